"""Review findings: scenarios that demonstrate defects of the engine core (each fails today).

Every test states the DESIGN rule it checks and the mechanism of the failure; the
review report (file:line, fix) refers to these tests by name.
"""

from __future__ import annotations

import asyncio

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry
from spane.errors import ExecutionNotFoundError, InvalidInputError
from spane.schemas.messages import ActivateExecution

from .helpers import eventually, fn, node, unique_id, wait_node, wait_status


# ---------------------------------------------------------------------------------------
# Finding #1: a duplicate StartExecution replays the recorded start commands, including the
#     DispatchTask of the root; the (single) worker re-claims its own live claim
#     (claim_task returns CLAIMED for the same worker id) and runs the task twice.
async def test_duplicate_start_with_same_execution_id_does_not_run_the_root_task_twice(
    make_engine,
):
    """DESIGN §5: a task runs more than once only if a worker died mid-task."""
    gate = asyncio.Event()
    runs: list[int] = []
    reg = TaskRegistry()

    @reg.task("once")
    async def once(data, ctx):
        runs.append(ctx.attempt)
        async with asyncio.timeout(5):
            await gate.wait()
        return "done"

    engine = await make_engine(reg)
    wf = unique_id("dup-start")
    await engine.register({"id": wf, "nodes": [fn("a", "once")]})

    execution_id = unique_id("exec")
    await engine.start(wf, None, execution_id=execution_id)
    await wait_node(engine, execution_id, "a", NodeStatus.RUNNING)
    await asyncio.sleep(0.1)
    # an API client retries its start (same execution id): must be a no-op
    assert await engine.start(wf, None, execution_id=execution_id) == execution_id
    await asyncio.sleep(0.3)
    gate.set()
    result = await engine.wait(execution_id, 5)
    assert result.status == ExecutionStatus.SUCCEEDED
    assert runs == [1], f"the root task ran {len(runs)} times for one attempt"


# ---------------------------------------------------------------------------------------
# Finding #7: the idempotency key is bound (claim_start_key) before the start is validated; a
#     refused start leaves the key bound to an execution that was never created, and the
#     corrected retry is answered "ok, duplicate" with that ghost id.
async def test_refused_start_does_not_burn_its_idempotency_key(make_engine):
    reg = TaskRegistry()

    @reg.task("echo")
    async def echo(data):
        return data

    engine = await make_engine(reg)
    wf = unique_id("idem-refused")
    await engine.register(
        {
            "id": wf,
            "input_schema": {
                "type": "object",
                "required": ["total"],
                "properties": {"total": {"type": "number"}},
            },
            "nodes": [fn("a", "echo")],
        }
    )
    with pytest.raises(InvalidInputError):
        await engine.start(wf, {"wrong": 1}, idempotency_key="order-42")

    execution_id = await engine.start(wf, {"total": 3}, idempotency_key="order-42")
    try:
        result = await engine.wait(execution_id, 5)
    except ExecutionNotFoundError:
        pytest.fail("the corrected start returned the id of an execution that does not exist")
    assert result.status == ExecutionStatus.SUCCEEDED


# ---------------------------------------------------------------------------------------
# Finding #3: a loop that is a finally branch (after `x.always` of a failed node) never starts
#     an iteration: LoopSteps._may_start refuses while meta.failing, so the loop node
#     stays WAITING/active and finish_if_done waits for it forever.
async def test_loop_in_a_finally_branch_runs_and_the_execution_ends(make_engine):
    """DESIGN §2: finally branches (successors of .always edges) run to completion."""
    engine = await make_engine(TaskRegistry())
    wf = unique_id("finally-loop")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("boom", "fail", error="boom"),
                node(
                    "cleanup",
                    "for_each",
                    "boom.always",
                    items="${ [1, 2] }",
                    body={"nodes": [node("t", "transform", output="${ item * 10 }")]},
                ),
            ],
        }
    )
    execution_id = await engine.start(wf, None)
    try:
        result = await engine.wait(execution_id, 2)
    except TimeoutError:
        snapshot = await engine.status(execution_id)
        pytest.fail(
            "execution never ended: finally loop is "
            f"{snapshot.nodes['cleanup'].status} with {snapshot.nodes['cleanup'].loop}"
        )
    assert result.status == ExecutionStatus.FAILED
    assert (await engine.status(execution_id)).nodes["cleanup"].output == [10, 20]


# ---------------------------------------------------------------------------------------
# Finding #5: cancellation is only broadcast to workers that are running the task *now*; a task
#     already dispatched but waiting for a worker slot (or still in the queue) is run
#     later anyway, after its execution was cancelled.
async def test_task_dispatched_before_cancel_does_not_run_after_cancel(make_engine):
    """DESIGN §2: Cancel cancels running nodes (a RUNNING node's task must not start)."""
    gate = asyncio.Event()
    side_effects: list[str] = []
    reg = TaskRegistry()

    @reg.task("block")
    async def block(data):
        async with asyncio.timeout(5):
            await gate.wait()
        return "ok"

    @reg.task("charge")
    async def charge(data, ctx):
        side_effects.append(ctx.execution_id)
        return "charged"

    engine = await make_engine(reg)
    slots = engine.settings.worker_concurrency
    blockers = unique_id("blockers")
    await engine.register({"id": blockers, "nodes": [fn(f"b{i}", "block") for i in range(slots)]})
    victim = unique_id("victim")
    await engine.register({"id": victim, "nodes": [fn("pay", "charge")]})

    blocking = await engine.start(blockers, None)
    for i in range(slots):
        await wait_node(engine, blocking, f"b{i}", NodeStatus.RUNNING)
    await asyncio.sleep(0.1)  # every worker slot is taken
    cancelled = await engine.start(victim, None)
    await wait_node(engine, cancelled, "pay", NodeStatus.RUNNING)  # dispatched
    await asyncio.sleep(0.1)
    await engine.cancel(cancelled)
    assert (await engine.wait(cancelled, 5)).status == ExecutionStatus.CANCELLED

    gate.set()
    await engine.wait(blocking, 5)
    await asyncio.sleep(0.3)
    assert side_effects == [], "the task of a cancelled execution ran after the cancel"


# ---------------------------------------------------------------------------------------
# Finding #4: a crash (here: a failed publish) between release_slot() and publishing the
#     ActivateExecution of the promoted execution. The redelivered batch replays
#     ExecutionFinished, but release_slot() is not idempotent for the promotion: the
#     waiting execution already holds the slot, nothing is promoted again, and it stays
#     PENDING forever (and so does every later one: the slot is never freed).
async def test_lost_activation_after_slot_release_is_recovered(make_engine):
    """DESIGN §5: a crash at any moment leaves no execution stuck."""
    reg = TaskRegistry()

    @reg.task("quick")
    async def quick(data):
        return data

    engine = await make_engine(reg)
    wf = unique_id("slot-crash")
    gate = asyncio.Event()

    @reg.task("hold")
    async def hold(data):
        async with asyncio.timeout(5):
            await gate.wait()
        return data

    await engine.register({"id": wf, "max_executions": 1, "nodes": [fn("a", "hold")]})
    first = await engine.start(wf, 1)
    await wait_node(engine, first, "a", NodeStatus.RUNNING)
    second = await engine.start(wf, 2)
    await wait_status(engine, second, ExecutionStatus.PENDING)

    bus = engine.bus
    original = bus.publish_inbox
    failed: list[bool] = []

    async def flaky_publish(messages):
        if not failed and any(isinstance(m, ActivateExecution) for m in messages):
            failed.append(True)
            raise ConnectionError("broker connection lost while publishing")
        await original(messages)

    bus.publish_inbox = flaky_publish
    gate.set()
    assert (await engine.wait(first, 5)).status == ExecutionStatus.SUCCEEDED
    await eventually(lambda: failed, timeout=5, what="the activation publish to fail once")
    try:
        result = await engine.wait(second, 2)
    except TimeoutError:
        meta = (await engine.status(second)).meta
        pytest.fail(f"the queued execution is stuck in {meta.status} after a redelivery")
    assert result.status == ExecutionStatus.SUCCEEDED


# ---------------------------------------------------------------------------------------
# Finding #2: a redelivered event replays its *recorded* commands, ScheduleTimer included, with
#     the fire_at computed back then. Timer ids are deterministic and "same id
#     replaces", so the replay rolls back timers moved since: here the attempt timeout
#     of a task that kept heartbeating is reset to its original, long-past deadline and
#     the healthy attempt is killed as timed out.
async def test_redelivered_result_does_not_roll_back_a_heartbeat_extended_timeout(make_engine):
    """DESIGN §4: a redelivery leads to the same outcome (step 3 is idempotent)."""
    from spane.schemas.messages import TaskResult

    reg = TaskRegistry()

    @reg.task("quick")
    async def quick(data):
        return "a-out"

    @reg.task("long")
    async def long(data, ctx):
        for _ in range(12):  # 1.2 s, heartbeating every 0.1 s; timeout is 0.5 s
            await asyncio.sleep(0.1)
            await ctx.heartbeat()
        return "b-out"

    engine = await make_engine(reg)
    wf = unique_id("replay-timer")
    await engine.register(
        {"id": wf, "nodes": [fn("a", "quick"), fn("b", "long", "a", timeout="500ms")]}
    )
    execution_id = await engine.start(wf, None)
    await wait_node(engine, execution_id, "b", NodeStatus.RUNNING)
    await asyncio.sleep(0.8)  # b is past its first deadline, alive thanks to heartbeats
    # at-least-once delivery: a's result arrives a second time
    await engine.bus.publish_inbox(
        [
            TaskResult(
                task_id=f"{execution_id}:a:1",
                execution_id=execution_id,
                node_id="a",
                attempt=1,
                ok=True,
                output="a-out",
            )
        ]
    )
    result = await engine.wait(execution_id, 5)
    assert result.status == ExecutionStatus.SUCCEEDED, result.error


# ---------------------------------------------------------------------------------------
# Finding #9: TaskContext.heartbeat is a coroutine function, so a plain ``def`` task (run in
#      the thread pool) cannot heartbeat: calling it only creates a coroutine that is
#      never awaited. A long synchronous task with a per-attempt timeout is killed.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
async def test_sync_task_can_heartbeat(make_engine):
    """DESIGN §4 Workers: ctx.heartbeat(); plain def runs in a thread pool."""
    import time

    reg = TaskRegistry()

    @reg.task("sync-long")
    def sync_long(data, ctx):
        for _ in range(8):  # 0.8 s, heartbeating every 0.1 s; timeout is 0.3 s
            time.sleep(0.1)
            ctx.heartbeat()
        return "done"

    engine = await make_engine(reg)
    wf = unique_id("sync-heartbeat")
    await engine.register({"id": wf, "nodes": [fn("a", "sync-long", timeout="300ms")]})
    result = await engine.run(wf, None, timeout=5)
    assert result.status == ExecutionStatus.SUCCEEDED, result.error
