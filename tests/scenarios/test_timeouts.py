"""Per-attempt timeouts, heartbeats and the execution timeout (DESIGN §2 "Retries and
timeouts", "Outcome of an execution")."""

from __future__ import annotations

import asyncio
import time

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry
from spane.schemas.messages import TaskResult

from .helpers import WAIT, EventLog, InboxLog, deploy, eventually, fn, node, wait_node

FAST = {"initial_interval": 0.01, "backoff": 1.0, "jitter": False}


async def test_attempt_timeout_fails_the_slow_attempt_and_retries_it(make_engine):
    reg = TaskRegistry()
    cancelled_attempts: list[int] = []

    @reg.task("slow_then_fast")
    async def slow_then_fast(data, ctx):
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                if ctx.cancelled.is_set():
                    cancelled_attempts.append(ctx.attempt)
                raise
        return {"attempt": ctx.attempt}

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "attempt-timeout",
        fn("call", "slow_then_fast", timeout="100ms", retry={"max_attempts": 2, **FAST}),
    )

    started = time.monotonic()
    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"attempt": 2}
    assert time.monotonic() - started >= 0.1  # attempt 1 had its 100 ms
    assert cancelled_attempts == [1]
    state = (await engine.status(result.execution_id)).nodes["call"]
    assert (state.status, state.attempt) == (NodeStatus.SUCCEEDED, 2)
    [retrying] = await events.wait_for(result.execution_id, f"node.{wf.id}.call.retrying")
    assert retrying.data["error"]["type"] == "Timeout"
    assert retrying.data["attempt"] == 1


async def test_late_result_of_a_superseded_attempt_is_ignored(make_engine):
    reg = TaskRegistry()
    attempt_2_started = asyncio.Event()

    @reg.task("stubborn")
    async def stubborn(data, ctx):
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                # keep going and report a result once attempt 2 has started
                async with asyncio.timeout(5):
                    await attempt_2_started.wait()
                return {"attempt": 1}
        attempt_2_started.set()
        # Outlive attempt 1's late result, heartbeating past the timeout: this attempt
        # reports only once the late result is published, so the orchestrator gets that first.
        async with asyncio.timeout(5):
            while not inbox.results(ctx.execution_id, "call", attempt=1):
                await asyncio.sleep(0.03)
                await ctx.heartbeat()
        return {"attempt": ctx.attempt}

    @reg.task("echo")
    async def echo(data):
        return data

    engine = await make_engine(reg)
    inbox = InboxLog.attach(engine)
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "late-result",
        fn("call", "stubborn", timeout="100ms", retry={"max_attempts": 2, **FAST}),
        fn("after", "echo", "call"),
    )

    execution_id = await wf.start()
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    [late] = inbox.results(execution_id, "call", attempt=1)
    assert late.output == {"attempt": 1}
    # the late result reached the orchestrator before attempt 2's and settled nothing
    snapshot = await engine.status(execution_id)
    call = snapshot.nodes["call"]
    assert (call.attempt, call.output) == (2, {"attempt": 2}), "a stale result settled the node"
    assert snapshot.nodes["after"].input == {"attempt": 2}
    await events.wait_for(execution_id, f"execution.{wf.id}.succeeded")
    [succeeded] = events.find(execution_id, f"node.{wf.id}.call.succeeded")
    assert succeeded.data["attempt"] == 2
    assert events.find(execution_id, f"node.{wf.id}.call.failed") == []


async def test_timeout_without_retries_fails_the_node_with_a_timeout_error(make_engine):
    reg = TaskRegistry()

    @reg.task("hangs")
    async def hangs(data):
        await asyncio.sleep(5)

    engine = await make_engine(reg)
    wf = await deploy(engine, "timeout-fail", fn("call", "hangs", timeout=0.05))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "Timeout"
    assert result.error.node_id == "call"
    assert "call" in result.error.message


async def test_heartbeats_keep_a_long_attempt_alive(make_engine):
    reg = TaskRegistry()

    @reg.task("beats")
    async def beats(data, ctx):
        for _ in range(8):
            await asyncio.sleep(0.04)
            await ctx.heartbeat({"progress": _})
        return {"attempt": ctx.attempt}

    engine = await make_engine(reg)
    wf = await deploy(engine, "heartbeat", fn("call", "beats", timeout="150ms"))

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"attempt": 1}


async def test_defaults_timeout_is_inherited_and_the_deadline_is_visible(make_engine):
    reg = TaskRegistry()
    deadlines: list[tuple[float | None, float]] = []

    @reg.task("hangs")
    async def hangs(data, ctx):
        deadlines.append((ctx.deadline, time.time()))
        await asyncio.sleep(5)

    engine = await make_engine(reg)
    wf = await deploy(engine, "defaults-timeout", fn("call", "hangs"), defaults={"timeout": "80ms"})

    before = time.time()
    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "Timeout"
    [(deadline, entered)] = deadlines
    assert deadline is not None
    # 80 ms after the attempt started: after the run began, before the task was entered
    assert before + 0.08 <= deadline <= entered + 0.08 + 1e-6


async def test_execution_timeout_times_out_and_cancels_running_tasks(make_engine):
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
        "exec-timeout",
        fn("call", "hangs"),
        fn("next", "record", "call"),
        fn("finally", "record", "call.always"),
        timeout="150ms",
    )

    started = time.monotonic()
    result = await wf.run()

    assert result.status == ExecutionStatus.TIMED_OUT
    assert time.monotonic() - started > 0.1
    assert result.error is not None
    assert result.error.type == "Timeout"
    async with asyncio.timeout(5):
        await saw_cancel.wait()
    assert calls == ["call"]
    snapshot = await engine.status(result.execution_id)
    assert snapshot.meta.status == ExecutionStatus.TIMED_OUT
    assert snapshot.nodes["call"].status == NodeStatus.CANCELLED
    await events.wait_for(result.execution_id, f"execution.{wf.id}.timed_out")


async def test_execution_timeout_keeps_counting_while_paused(make_engine):
    reg = TaskRegistry()

    @reg.task("quick")
    async def quick(data):
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "paused-timeout",
        node("wait", "delay", duration="50ms"),
        fn("after", "quick", "wait"),
        timeout="200ms",
    )

    execution_id = await wf.start(1)
    await engine.pause(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.TIMED_OUT
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes.get("after") is None or snapshot.nodes["after"].status != (
        NodeStatus.SUCCEEDED
    )


async def test_execution_timeout_cancels_a_waiting_signal_node(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = await deploy(
        engine,
        "signal-exec-timeout",
        node("approve", "wait_for_signal", signal="ok"),
        timeout="100ms",
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "approve", NodeStatus.WAITING)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.TIMED_OUT
    assert (await engine.status(execution_id)).nodes["approve"].status == NodeStatus.CANCELLED


async def test_timeout_listed_as_non_retryable_is_not_retried(make_engine):
    reg = TaskRegistry()
    attempts: list[int] = []

    @reg.task("hangs")
    async def hangs(data, ctx):
        attempts.append(ctx.attempt)
        await asyncio.sleep(5)

    engine = await make_engine(reg)
    policy = {"max_attempts": 3, "non_retryable": ["Timeout"], **FAST}
    wf = await deploy(engine, "timeout-final", fn("call", "hangs", timeout=0.05, retry=policy))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "Timeout"
    assert attempts == [1]


async def test_execution_timeout_cancels_child_executions(make_engine):
    reg = TaskRegistry()

    @reg.task("hangs")
    async def hangs(data):
        await asyncio.sleep(5)

    engine = await make_engine(reg)
    child = await deploy(engine, "child", fn("work", "hangs"))
    wf = await deploy(
        engine, "parent-timeout", node("sub", "sub_workflow", workflow=child.id), timeout="100ms"
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.TIMED_OUT
    [child_id] = (await engine.status(result.execution_id)).nodes["sub"].children
    assert (await engine.wait(child_id, 10)).status == ExecutionStatus.CANCELLED


async def test_a_redelivered_result_does_not_roll_back_a_timeout_extended_by_heartbeats(
    make_engine,
):
    """DESIGN §4: a redelivery leads to the same outcome. Replaying the commands recorded
    for the first delivery must not re-arm the attempt timeout at its original deadline."""
    reg = TaskRegistry()
    beats: list[int] = []

    @reg.task("quick")
    async def quick(data):
        return "a-out"

    @reg.task("long")
    async def long(data, ctx):
        for beat in range(12):  # 1.2 s, heartbeating every 0.1 s; the timeout is 0.5 s
            await asyncio.sleep(0.1)
            await ctx.heartbeat()
            beats.append(beat)
        return "b-out"

    engine = await make_engine(reg)
    wf = await deploy(
        engine, "replay-timer", fn("a", "quick"), fn("b", "long", "a", timeout="500ms")
    )
    execution_id = await wf.start()
    await wait_node(engine, execution_id, "b", NodeStatus.RUNNING)
    # b is past its first deadline, alive thanks to its heartbeats
    await eventually(lambda: len(beats) >= 7, what="b heartbeating past its first deadline")
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
    result = await engine.wait(execution_id, WAIT)
    assert result.status == ExecutionStatus.SUCCEEDED, result.error


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
async def test_sync_task_heartbeats_keep_a_long_attempt_alive(make_engine):
    """DESIGN §4 Workers: ``ctx.heartbeat()`` works from a plain ``def`` task too (run in
    the thread pool), not only from a coroutine."""
    reg = TaskRegistry()

    @reg.task("sync-long")
    def sync_long(data, ctx):
        for _ in range(8):  # 0.8 s, heartbeating every 0.1 s; the timeout is 0.3 s
            time.sleep(0.1)
            ctx.heartbeat()
        return "done"

    engine = await make_engine(reg)
    wf = await deploy(engine, "sync-heartbeat", fn("a", "sync-long", timeout="300ms"))
    result = await wf.run()
    assert result.status == ExecutionStatus.SUCCEEDED, result.error
