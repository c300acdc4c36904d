"""Pause, resume and cancel (DESIGN §2 "Outcome of an execution", §4 commands)."""

from __future__ import annotations

import asyncio

import pytest

from spane import CommandRejectedError, ExecutionStatus, NodeStatus, TaskRegistry
from spane.errors import ExecutionNotFoundError

from .helpers import EventLog, fn, node, unique_id, wait_node, wait_status


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
    wf = unique_id("pause")
    await engine.register(
        {"id": wf, "nodes": [fn("first", "gated"), fn("second", "record", "first")]}
    )

    execution_id = await engine.start(wf, None)
    await wait_node(engine, execution_id, "first", NodeStatus.RUNNING)
    await engine.pause(execution_id)
    assert (await engine.status(execution_id)).meta.status == ExecutionStatus.PAUSED

    gate.set()
    # the running task finishes and its result is recorded while paused
    first = await wait_node(engine, execution_id, "first", NodeStatus.SUCCEEDED)
    assert first.output == "first done"
    await asyncio.sleep(0.15)
    snapshot = await engine.status(execution_id)
    assert snapshot.meta.status == ExecutionStatus.PAUSED
    assert calls == ["first"], "a task was dispatched while paused"
    assert snapshot.nodes["second"].status == NodeStatus.READY

    await engine.resume(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "first done"
    assert calls == ["first", "second"]
    await events.wait_for(execution_id, f"execution.{wf}.succeeded")
    keys = events.keys(execution_id)
    assert keys.index(f"execution.{wf}.paused") < keys.index(f"execution.{wf}.resumed")
    assert keys.index(f"execution.{wf}.resumed") < keys.index(f"node.{wf}.second.started")


async def test_timers_that_fire_while_paused_are_held_until_resume(make_engine):
    calls: list[str] = []
    engine = await make_engine(_gated_registry(asyncio.Event(), calls))
    wf = unique_id("pause-timer")
    await engine.register(
        {
            "id": wf,
            "nodes": [node("nap", "delay", duration="50ms"), fn("after", "record", "nap")],
        }
    )

    execution_id = await engine.start(wf, "payload")
    await engine.pause(execution_id)
    await asyncio.sleep(0.2)  # the delay's timer is due meanwhile
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
    wf = unique_id("pause-retry")
    policy = {"max_attempts": 2, "initial_interval": "100ms", "jitter": False}
    await engine.register({"id": wf, "nodes": [fn("call", "flaky", retry=policy)]})

    execution_id = await engine.start(wf, None)
    await wait_node(engine, execution_id, "call", NodeStatus.WAITING)
    await engine.pause(execution_id)
    await asyncio.sleep(0.25)
    assert attempts == [1]

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
    wf = unique_id("cancel")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                fn("call", "hangs"),
                fn("next", "record", "call"),
                fn("cleanup", "record", "call.always"),
                fn("on_error", "record", "call.error"),
            ],
        }
    )

    execution_id = await engine.start(wf, None)
    await wait_node(engine, execution_id, "call", NodeStatus.RUNNING)
    await engine.cancel(execution_id, reason="operator said stop")
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.CANCELLED
    assert result.error is not None
    assert result.error.type == "Cancelled"
    assert "operator said stop" in result.error.message
    async with asyncio.timeout(5):
        await saw_cancel.wait()
    await asyncio.sleep(0.05)
    assert calls == ["call"]
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes["call"].status == NodeStatus.CANCELLED
    for node_id in ("next", "cleanup", "on_error"):
        state = snapshot.nodes.get(node_id)
        assert state is None or state.status in (NodeStatus.PENDING, NodeStatus.CANCELLED)
    await events.wait_for(execution_id, f"execution.{wf}.cancelled")
    await events.wait_for(execution_id, f"node.{wf}.call.cancelled")


async def test_cancel_a_paused_execution(make_engine):
    gate = asyncio.Event()
    calls: list[str] = []
    engine = await make_engine(_gated_registry(gate, calls))
    wf = unique_id("cancel-paused")
    await engine.register(
        {"id": wf, "nodes": [fn("first", "gated"), fn("second", "record", "first")]}
    )

    execution_id = await engine.start(wf, None)
    await wait_node(engine, execution_id, "first", NodeStatus.RUNNING)
    await engine.pause(execution_id)
    gate.set()
    await wait_node(engine, execution_id, "first", NodeStatus.SUCCEEDED)
    await engine.cancel(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.CANCELLED
    await asyncio.sleep(0.05)
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
    child = unique_id("child")
    parent = unique_id("parent")
    await engine.register({"id": child, "nodes": [fn("work", "hangs")]})
    await engine.register({"id": parent, "nodes": [node("sub", "sub_workflow", workflow=child)]})

    execution_id = await engine.start(parent, None)
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
    wf = unique_id("finished")
    await engine.register({"id": wf, "nodes": [fn("a", "record")]})
    result = await engine.run(wf, 1, timeout=10)
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
    wf = unique_id("reject")
    await engine.register({"id": wf, "nodes": [fn("a", "gated")]})

    execution_id = await engine.start(wf, None)
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
    wf = unique_id("running")
    await engine.register({"id": wf, "nodes": [fn("a", "gated")]})

    execution_id = await engine.start(wf, None)
    try:
        await wait_status(engine, execution_id, ExecutionStatus.RUNNING)
        await wait_node(engine, execution_id, "a", NodeStatus.RUNNING)
        with pytest.raises(TimeoutError):
            await engine.wait(execution_id, 0.05)
    finally:
        gate.set()
    assert (await engine.wait(execution_id, 10)).output == "a done"
