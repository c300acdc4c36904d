"""Per-attempt timeouts, heartbeats and the execution timeout (DESIGN §2 "Retries and
timeouts", "Outcome of an execution")."""

from __future__ import annotations

import asyncio
import time

from spane import ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import EventLog, fn, node, unique_id, wait_node

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
    wf = unique_id("attempt-timeout")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                fn("call", "slow_then_fast", timeout="100ms", retry={"max_attempts": 2, **FAST})
            ],
        }
    )

    started = time.monotonic()
    result = await engine.run(wf, None, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"attempt": 2}
    assert time.monotonic() - started < 3
    assert cancelled_attempts == [1]
    state = (await engine.status(result.execution_id)).nodes["call"]
    assert (state.status, state.attempt) == (NodeStatus.SUCCEEDED, 2)
    [retrying] = await events.wait_for(result.execution_id, f"node.{wf}.call.retrying")
    assert retrying.data["error"]["type"] == "Timeout"
    assert retrying.data["attempt"] == 1


async def test_late_result_of_a_superseded_attempt_is_ignored(make_engine):
    reg = TaskRegistry()
    late_sent = asyncio.Event()

    @reg.task("stubborn")
    async def stubborn(data, ctx):
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                # keep going and report a result after attempt 2 has started
                await asyncio.sleep(0.1)
                late_sent.set()
                return {"attempt": 1}
        for _ in range(6):  # outlive attempt 1's late result, heartbeating past the timeout
            await asyncio.sleep(0.05)
            await ctx.heartbeat()
        return {"attempt": ctx.attempt}

    @reg.task("echo")
    async def echo(data):
        return data

    engine = await make_engine(reg)
    wf = unique_id("late-result")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                fn("call", "stubborn", timeout="100ms", retry={"max_attempts": 2, **FAST}),
                fn("after", "echo", "call"),
            ],
        }
    )

    execution_id = await engine.start(wf, None)
    async with asyncio.timeout(5):
        await late_sent.wait()
    await asyncio.sleep(0.02)
    state = (await engine.status(execution_id)).nodes["call"]
    assert state.status == NodeStatus.RUNNING, "a stale attempt's result settled the node"
    assert state.attempt == 2
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes["call"].output == {"attempt": 2}
    assert snapshot.nodes["after"].input == {"attempt": 2}


async def test_timeout_without_retries_fails_the_node_with_a_timeout_error(make_engine):
    reg = TaskRegistry()

    @reg.task("hangs")
    async def hangs(data):
        await asyncio.sleep(5)

    engine = await make_engine(reg)
    wf = unique_id("timeout-fail")
    await engine.register({"id": wf, "nodes": [fn("call", "hangs", timeout=0.05)]})

    result = await engine.run(wf, None, timeout=10)

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
    wf = unique_id("heartbeat")
    await engine.register({"id": wf, "nodes": [fn("call", "beats", timeout="150ms")]})

    result = await engine.run(wf, None, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"attempt": 1}


async def test_defaults_timeout_is_inherited_and_the_deadline_is_visible(make_engine):
    reg = TaskRegistry()
    deadlines: list[float | None] = []

    @reg.task("hangs")
    async def hangs(data, ctx):
        deadlines.append(ctx.deadline)
        await asyncio.sleep(5)

    engine = await make_engine(reg)
    wf = unique_id("defaults-timeout")
    await engine.register(
        {"id": wf, "defaults": {"timeout": "80ms"}, "nodes": [fn("call", "hangs")]}
    )

    before = time.time()
    result = await engine.run(wf, None, timeout=10)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "Timeout"
    [deadline] = deadlines
    assert deadline is not None
    assert before < deadline < before + 2


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
    wf = unique_id("exec-timeout")
    await engine.register(
        {
            "id": wf,
            "timeout": "150ms",
            "nodes": [
                fn("call", "hangs"),
                fn("next", "record", "call"),
                fn("finally", "record", "call.always"),
            ],
        }
    )

    started = time.monotonic()
    result = await engine.run(wf, None, timeout=10)

    assert result.status == ExecutionStatus.TIMED_OUT
    assert 0.1 < time.monotonic() - started < 3
    assert result.error is not None
    assert result.error.type == "Timeout"
    async with asyncio.timeout(5):
        await saw_cancel.wait()
    assert calls == ["call"]
    snapshot = await engine.status(result.execution_id)
    assert snapshot.meta.status == ExecutionStatus.TIMED_OUT
    assert snapshot.nodes["call"].status == NodeStatus.CANCELLED
    await events.wait_for(result.execution_id, f"execution.{wf}.timed_out")


async def test_execution_timeout_keeps_counting_while_paused(make_engine):
    reg = TaskRegistry()

    @reg.task("quick")
    async def quick(data):
        return data

    engine = await make_engine(reg)
    wf = unique_id("paused-timeout")
    await engine.register(
        {
            "id": wf,
            "timeout": "200ms",
            "nodes": [node("wait", "delay", duration="50ms"), fn("after", "quick", "wait")],
        }
    )

    execution_id = await engine.start(wf, 1)
    await engine.pause(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.TIMED_OUT
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes.get("after") is None or snapshot.nodes["after"].status != (
        NodeStatus.SUCCEEDED
    )


async def test_execution_timeout_cancels_a_waiting_signal_node(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = unique_id("signal-exec-timeout")
    await engine.register(
        {"id": wf, "timeout": "100ms", "nodes": [node("approve", "wait_for_signal", signal="ok")]}
    )

    execution_id = await engine.start(wf, None)
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
    wf = unique_id("timeout-final")
    policy = {"max_attempts": 3, "non_retryable": ["Timeout"], **FAST}
    await engine.register({"id": wf, "nodes": [fn("call", "hangs", timeout=0.05, retry=policy)]})

    result = await engine.run(wf, None, timeout=10)

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
    child = unique_id("child")
    wf = unique_id("parent-timeout")
    await engine.register({"id": child, "nodes": [fn("work", "hangs")]})
    await engine.register(
        {"id": wf, "timeout": "100ms", "nodes": [node("sub", "sub_workflow", workflow=child)]}
    )

    result = await engine.run(wf, None, timeout=10)

    assert result.status == ExecutionStatus.TIMED_OUT
    [child_id] = (await engine.status(result.execution_id)).nodes["sub"].children
    assert (await engine.wait(child_id, 10)).status == ExecutionStatus.CANCELLED
