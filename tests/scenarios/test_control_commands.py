"""Pause, resume and cancel (DESIGN §2 "Outcome of an execution", §4 commands)."""

from __future__ import annotations

import asyncio

import pytest

from spane import CommandRejectedError, Engine, ExecutionStatus, NodeStatus, TaskRegistry
from spane.errors import ExecutionNotFoundError

from .helpers import EventLog, deploy, eventually, fn, node, unique_id, wait_node, wait_status


async def _wait_held_timer(engine: Engine, execution_id: str) -> None:
    """Wait until a timer of the paused execution came due and was held for its resume."""

    async def held() -> bool:
        return bool((await engine.status(execution_id)).meta.held)

    await eventually(held, what="a timer held while paused")


def _gated_registry(gate: asyncio.Event, calls: list[str]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("gated")
    async def gated(data, ctx):
        calls.append(ctx.node_id)
        async with asyncio.timeout(5):
            await gate.wait()
        return f"{ctx.node_id} done"

    @reg.task("record")
    async def record(data, ctx):
        calls.append(ctx.node_id)
        return data

    return reg


async def test_pause_lets_running_tasks_finish_and_dispatches_nothing_until_resume(make_engine):
    gate = asyncio.Event()
    calls: list[str] = []
    engine = await make_engine(_gated_registry(gate, calls))
    events = await EventLog.attach(engine)
    wf = await deploy(engine, "pause", fn("first", "gated"), fn("second", "record", "first"))

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "first", NodeStatus.RUNNING)
    await engine.pause(execution_id)
    assert (await engine.status(execution_id)).meta.status == ExecutionStatus.PAUSED

    gate.set()
    # the running task finishes and its result is recorded while paused; the step that
    # records it queues `second` (READY) instead of dispatching it
    first = await wait_node(engine, execution_id, "first", NodeStatus.SUCCEEDED)
    assert first.output == "first done"
    await wait_node(engine, execution_id, "second", NodeStatus.READY)
    snapshot = await engine.status(execution_id)
    assert snapshot.meta.status == ExecutionStatus.PAUSED
    assert calls == ["first"], "a task was dispatched while paused"
    assert snapshot.nodes["second"].status == NodeStatus.READY

    await engine.resume(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "first done"
    assert calls == ["first", "second"]
    await events.wait_for(execution_id, f"execution.{wf.id}.succeeded")
    keys = events.keys(execution_id)
    assert keys.index(f"execution.{wf.id}.paused") < keys.index(f"execution.{wf.id}.resumed")
    assert keys.index(f"execution.{wf.id}.resumed") < keys.index(f"node.{wf.id}.second.started")


async def test_timers_that_fire_while_paused_are_held_until_resume(make_engine):
    calls: list[str] = []
    engine = await make_engine(_gated_registry(asyncio.Event(), calls))
    wf = await deploy(
        engine, "pause-timer", node("nap", "delay", duration="50ms"), fn("after", "record", "nap")
    )

    execution_id = await wf.start("payload")
    await engine.pause(execution_id)
    await _wait_held_timer(engine, execution_id)  # the delay's timer came due meanwhile
    snapshot = await engine.status(execution_id)
    assert snapshot.meta.status == ExecutionStatus.PAUSED
    assert snapshot.nodes["nap"].status == NodeStatus.WAITING
    assert calls == []

    await engine.resume(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "payload"
    assert calls == ["after"]


async def test_retry_timer_fired_while_paused_is_held_until_resume(make_engine):
    reg = TaskRegistry()
    attempts: list[int] = []

    @reg.task("flaky")
    async def flaky(data, ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("once")
        return "ok"

    engine = await make_engine(reg)
    policy = {"max_attempts": 2, "initial_interval": "100ms", "jitter": False}
    wf = await deploy(engine, "pause-retry", fn("call", "flaky", retry=policy))

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "call", NodeStatus.WAITING)
    await engine.pause(execution_id)
    await _wait_held_timer(engine, execution_id)  # the retry came due meanwhile
    assert attempts == [1]
    assert (await engine.status(execution_id)).nodes["call"].status == NodeStatus.WAITING

    await engine.resume(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.output == "ok"
    assert attempts == [1, 2]


async def test_cancel_stops_running_tasks_and_runs_no_always_branch(make_engine):
    reg = TaskRegistry()
    saw_cancel = asyncio.Event()
    calls: list[str] = []

    @reg.task("hangs")
    async def hangs(data, ctx):
        calls.append(ctx.node_id)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                saw_cancel.set()
            raise

    @reg.task("record")
    async def record(data, ctx):
        calls.append(ctx.node_id)

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "cancel",
        fn("call", "hangs"),
        fn("next", "record", "call"),
        fn("cleanup", "record", "call.always"),
        fn("on_error", "record", "call.error"),
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "call", NodeStatus.RUNNING)
    await engine.cancel(execution_id, reason="operator said stop")
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.CANCELLED
    assert result.error is not None
    assert result.error.type == "Cancelled"
    assert "operator said stop" in result.error.message
    async with asyncio.timeout(5):
        await saw_cancel.wait()
    await events.wait_for(execution_id, f"node.{wf.id}.call.cancelled")
    # the execution's last event: any node started before it would have been announced
    await events.wait_for(execution_id, f"execution.{wf.id}.cancelled")
    started = [key for key in events.keys(execution_id) if key.endswith(".started")]
    assert started == [f"execution.{wf.id}.started", f"node.{wf.id}.call.started"]
    assert calls == ["call"]
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes["call"].status == NodeStatus.CANCELLED
    for node_id in ("next", "cleanup", "on_error"):
        state = snapshot.nodes.get(node_id)
        assert state is None or state.status in (NodeStatus.PENDING, NodeStatus.CANCELLED)


async def test_cancel_a_paused_execution(make_engine):
    gate = asyncio.Event()
    calls: list[str] = []
    engine = await make_engine(_gated_registry(gate, calls))
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine, "cancel-paused", fn("first", "gated"), fn("second", "record", "first")
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "first", NodeStatus.RUNNING)
    await engine.pause(execution_id)
    gate.set()
    await wait_node(engine, execution_id, "first", NodeStatus.SUCCEEDED)
    await engine.cancel(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.CANCELLED
    # the execution's last event: had `second` been dispatched, it would come before
    await events.wait_for(execution_id, f"execution.{wf.id}.cancelled")
    assert f"node.{wf.id}.second.started" not in events.keys(execution_id)
    assert calls == ["first"]
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes["second"].status == NodeStatus.CANCELLED


async def test_cancel_cancels_child_executions(make_engine):
    reg = TaskRegistry()
    saw_cancel = asyncio.Event()

    @reg.task("hangs")
    async def hangs(data, ctx):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                saw_cancel.set()
            raise

    engine = await make_engine(reg)
    child = await deploy(engine, "child", fn("work", "hangs"))
    parent = await deploy(engine, "parent", node("sub", "sub_workflow", workflow=child.id))

    execution_id = await parent.start()
    sub = await wait_node(engine, execution_id, "sub", NodeStatus.WAITING)
    [child_id] = sub.children
    await wait_node(engine, child_id, "work", NodeStatus.RUNNING)
    await engine.cancel(execution_id)

    assert (await engine.wait(execution_id, 10)).status == ExecutionStatus.CANCELLED
    assert (await engine.wait(child_id, 10)).status == ExecutionStatus.CANCELLED
    async with asyncio.timeout(5):
        await saw_cancel.wait()


@pytest.mark.parametrize("command", ["pause", "resume", "cancel"])
async def test_commands_on_a_finished_execution_are_rejected_clearly(make_engine, command):
    calls: list[str] = []
    engine = await make_engine(_gated_registry(asyncio.Event(), calls))
    wf = await deploy(engine, "finished", fn("a", "record"))
    result = await wf.run(1)
    assert result.status == ExecutionStatus.SUCCEEDED

    with pytest.raises(CommandRejectedError) as caught:
        await getattr(engine, command)(result.execution_id)

    message = str(caught.value)
    assert result.execution_id in message
    assert "succeeded" in message
    snapshot = await engine.status(result.execution_id)
    assert snapshot.meta.status == ExecutionStatus.SUCCEEDED
    assert snapshot.meta.output == 1


async def test_resume_of_a_running_and_pause_of_a_paused_execution_are_rejected(make_engine):
    gate = asyncio.Event()
    calls: list[str] = []
    engine = await make_engine(_gated_registry(gate, calls))
    wf = await deploy(engine, "reject", fn("a", "gated"))

    execution_id = await wf.start()
    try:
        with pytest.raises(CommandRejectedError, match="not paused"):
            await engine.resume(execution_id)
        await engine.pause(execution_id)
        with pytest.raises(CommandRejectedError, match="paused"):
            await engine.pause(execution_id)
        await engine.resume(execution_id)
    finally:
        gate.set()
    assert (await engine.wait(execution_id, 10)).status == ExecutionStatus.SUCCEEDED


UNKNOWN_EXECUTION_CALLS = {
    "pause": lambda engine, missing: engine.pause(missing),
    "resume": lambda engine, missing: engine.resume(missing),
    "cancel": lambda engine, missing: engine.cancel(missing),
    "signal": lambda engine, missing: engine.signal(missing, "go", {}),
    "status": lambda engine, missing: engine.status(missing),
    "wait": lambda engine, missing: engine.wait(missing, 1),
}


@pytest.mark.parametrize("call", sorted(UNKNOWN_EXECUTION_CALLS))
async def test_commands_on_an_unknown_execution_raise_not_found(make_engine, call):
    engine = await make_engine(TaskRegistry())
    missing = unique_id("no-such-execution")

    with pytest.raises(ExecutionNotFoundError, match=missing):
        await UNKNOWN_EXECUTION_CALLS[call](engine, missing)


async def test_status_reports_a_running_execution(make_engine):
    gate = asyncio.Event()
    calls: list[str] = []
    engine = await make_engine(_gated_registry(gate, calls))
    wf = await deploy(engine, "running", fn("a", "gated"))

    execution_id = await wf.start()
    try:
        await wait_status(engine, execution_id, ExecutionStatus.RUNNING)
        await wait_node(engine, execution_id, "a", NodeStatus.RUNNING)
        with pytest.raises(TimeoutError):
            await engine.wait(execution_id, 0.05)
    finally:
        gate.set()
    assert (await engine.wait(execution_id, 10)).output == "a done"


async def test_task_dispatched_before_a_cancel_never_runs(make_engine):
    """DESIGN §2: Cancel cancels running nodes -- also a task dispatched but still waiting
    for a worker slot (or in the queue): it must not start after the cancel."""
    gate = asyncio.Event()
    blocked: list[str] = []
    side_effects: list[str] = []
    reg = TaskRegistry()

    @reg.task("block")
    async def block(data, ctx):
        blocked.append(ctx.node_id)
        async with asyncio.timeout(5):
            await gate.wait()
        return "ok"

    @reg.task("charge")
    async def charge(data, ctx):
        side_effects.append(ctx.execution_id)
        return "charged"

    engine = await make_engine(reg)
    slots = engine.settings.worker_concurrency
    blockers = await deploy(engine, "blockers", *(fn(f"b{i}", "block") for i in range(slots)))
    victim = await deploy(engine, "victim", fn("pay", "charge"))

    blocking = await blockers.start()
    try:
        await eventually(lambda: len(blocked) == slots, what="every worker slot taken")
        cancelled = await victim.start()
        await wait_node(engine, cancelled, "pay", NodeStatus.RUNNING)  # dispatched
        await engine.cancel(cancelled)
        assert (await engine.wait(cancelled, 5)).status == ExecutionStatus.CANCELLED
    finally:
        gate.set()
    await engine.wait(blocking, 5)

    # a charge dispatched after the cancel gets a slot after the cancelled one would have
    later = await victim.run()
    assert side_effects == [later.execution_id], (
        "the task of a cancelled execution ran after the cancel"
    )
