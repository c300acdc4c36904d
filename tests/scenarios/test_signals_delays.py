"""``wait_for_signal`` and ``delay`` nodes (DESIGN §2 node types, §4 "signal")."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spane import CommandRejectedError, ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import deploy, fn, node, wait_node


def _registry(received: dict[str, list[Any]]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("echo")
    async def echo(data, ctx):
        received.setdefault(ctx.node_id, []).append(data)
        return data

    return reg


async def test_signal_payload_becomes_the_node_output(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "signal",
        fn("prepare", "echo"),
        node("approval", "wait_for_signal", "prepare", signal="approve"),
        fn("ship", "echo", "approval"),
    )

    execution_id = await wf.start({"order": 1})
    state = await wait_node(engine, execution_id, "approval", NodeStatus.WAITING)
    assert state.output is None
    assert "ship" not in received

    await engine.signal(execution_id, "approve", {"by": "ada", "ok": True})
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"by": "ada", "ok": True}
    assert received["ship"] == [{"by": "ada", "ok": True}]
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes["approval"].output == {"by": "ada", "ok": True}


async def test_signal_failing_the_schema_is_refused_and_the_node_keeps_waiting(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    schema = {
        "type": "object",
        "properties": {"approved": {"type": "boolean"}},
        "required": ["approved"],
    }
    wf = await deploy(
        engine,
        "signal-schema",
        node("approval", "wait_for_signal", signal="decision", schema=schema),
        fn("next", "echo", "approval"),
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "approval", NodeStatus.WAITING)

    with pytest.raises(CommandRejectedError) as caught:
        await engine.signal(execution_id, "decision", {"approved": "yes"})

    message = str(caught.value)
    assert "decision" in message
    assert "approval" in message
    assert "approved" in message
    # the refusal is the orchestrator's answer: the decision is taken, nothing changed
    snapshot = await engine.status(execution_id)
    assert snapshot.meta.status == ExecutionStatus.RUNNING
    assert snapshot.nodes["approval"].status == NodeStatus.WAITING
    assert received == {}

    await engine.signal(execution_id, "decision", {"approved": True})
    result = await engine.wait(execution_id, 10)
    assert result.status == ExecutionStatus.SUCCEEDED
    assert received["next"] == [{"approved": True}]


async def test_signal_nobody_waits_for_is_refused_and_changes_nothing(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine, "signal-nobody", node("approval", "wait_for_signal", signal="approve")
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "approval", NodeStatus.WAITING)

    with pytest.raises(CommandRejectedError) as caught:
        await engine.signal(execution_id, "reject", {"why": "no"})

    assert "reject" in str(caught.value)
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes["approval"].status == NodeStatus.WAITING
    await engine.signal(execution_id, "approve", 1)
    assert (await engine.wait(execution_id, 10)).output == 1


async def test_signal_before_the_node_is_reached_is_refused(make_engine):
    reg = TaskRegistry()
    gate = asyncio.Event()

    @reg.task("gated")
    async def gated(data):
        async with asyncio.timeout(5):
            await gate.wait()
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "signal-early",
        fn("first", "gated"),
        node("wait", "wait_for_signal", "first", signal="go"),
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "first", NodeStatus.RUNNING)
    try:
        with pytest.raises(CommandRejectedError):
            await engine.signal(execution_id, "go", "too early")
    finally:
        gate.set()
    await wait_node(engine, execution_id, "wait", NodeStatus.WAITING)
    await engine.signal(execution_id, "go", "in time")
    assert (await engine.wait(execution_id, 10)).output == "in time"


async def test_signal_to_a_finished_execution_is_refused(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(engine, "signal-finished", fn("a", "echo"))
    result = await wf.run(1)

    with pytest.raises(CommandRejectedError, match="succeeded"):
        await engine.signal(result.execution_id, "anything", {})


async def test_one_signal_reaches_every_node_waiting_for_it(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "signal-many",
        node("w1", "wait_for_signal", signal="go"),
        node("w2", "wait_for_signal", signal="go"),
        fn("both", "echo", "w1", "w2"),
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "w1", NodeStatus.WAITING)
    await wait_node(engine, execution_id, "w2", NodeStatus.WAITING)
    await engine.signal(execution_id, "go", "now")
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received["both"] == [{"w1": "now", "w2": "now"}]


async def test_signal_timeout_is_caught_by_the_error_port(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "signal-timeout",
        node("approval", "wait_for_signal", signal="approve", timeout="80ms"),
        fn("approved", "echo", "approval"),
        fn("escalate", "echo", "approval.error"),
    )

    started = time.monotonic()
    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.07
    assert "approved" not in received
    [error] = received["escalate"]
    assert error["type"] == "Timeout"
    assert error["node_id"] == "approval"
    assert "approve" in error["message"]
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["approval"].status == NodeStatus.FAILED


async def test_signal_timeout_without_catch_fails_the_execution(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = await deploy(
        engine,
        "signal-timeout-fail",
        node("approval", "wait_for_signal", signal="ok", timeout=0.05),
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert (result.error.type, result.error.node_id) == ("Timeout", "approval")


async def test_signal_after_its_timeout_is_refused(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "signal-too-late",
        node("approval", "wait_for_signal", signal="ok", timeout=0.05),
        fn("caught", "echo", "approval.error"),
        node("keep_alive", "wait_for_signal", signal="finish"),
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "caught", NodeStatus.SUCCEEDED)
    with pytest.raises(CommandRejectedError, match="ok"):
        await engine.signal(execution_id, "ok", "late")
    snapshot = await engine.status(execution_id)
    assert snapshot.nodes["approval"].status == NodeStatus.FAILED
    assert snapshot.nodes["approval"].output is None

    await engine.signal(execution_id, "finish", "done")
    result = await engine.wait(execution_id, 10)
    assert result.status == ExecutionStatus.SUCCEEDED


async def test_delay_waits_its_duration_and_passes_its_input_on(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine, "delay", node("nap", "delay", duration="150ms"), fn("after", "echo", "nap")
    )

    started = time.monotonic()
    execution_id = await wf.start({"x": 1})
    state = await wait_node(engine, execution_id, "nap", NodeStatus.WAITING)
    assert state.output is None
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.14
    assert received["after"] == [{"x": 1}]


async def test_delay_until_a_past_time_completes_at_once(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "delay-past",
        node("nap", "delay", until="2000-01-01T00:00:00Z"),
        fn("after", "echo", "nap"),
    )

    result = await wf.run("now")

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "now"
    nap = (await engine.status(result.execution_id)).nodes["nap"]
    # a moment already past arms no timer: the node settles in the step that reaches it
    assert nap.status == NodeStatus.SUCCEEDED
    assert nap.timers == {}
    assert nap.finished_at == nap.started_at


async def test_delay_until_a_templated_future_time(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "delay-until",
        node("nap", "delay", until="${ input.at }"),
        fn("after", "echo", "nap"),
    )

    at = (datetime.now(UTC) + timedelta(milliseconds=200)).isoformat()
    started = time.monotonic()
    result = await wf.run({"at": at})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.15
    assert received["after"] == [{"at": at}]


async def test_delay_until_that_is_not_a_time_fails_the_node_clearly(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = await deploy(engine, "delay-bad", node("nap", "delay", until="${ input.at }"))

    result = await wf.run({"at": "next tuesday"})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "nap"
    assert "until" in result.error.message
