"""``wait_for_signal`` and ``delay`` nodes (DESIGN §2 node types, §4 "signal")."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spane import CommandRejectedError, ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import fn, node, unique_id, wait_node


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
    wf = unique_id("signal")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                fn("prepare", "echo"),
                node("approval", "wait_for_signal", "prepare", signal="approve"),
                fn("ship", "echo", "approval"),
            ],
        }
    )

    execution_id = await engine.start(wf, {"order": 1})
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
    wf = unique_id("signal-schema")
    schema = {
        "type": "object",
        "properties": {"approved": {"type": "boolean"}},
        "required": ["approved"],
    }
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("approval", "wait_for_signal", signal="decision", schema=schema),
                fn("next", "echo", "approval"),
            ],
        }
    )

    execution_id = await engine.start(wf, None)
    await wait_node(engine, execution_id, "approval", NodeStatus.WAITING)

    with pytest.raises(CommandRejectedError) as caught:
        await engine.signal(execution_id, "decision", {"approved": "yes"})

    message = str(caught.value)
    assert "decision" in message
    assert "approval" in message
    assert "approved" in message
    await asyncio.sleep(0.05)
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
    wf = unique_id("signal-nobody")
    await engine.register(
        {"id": wf, "nodes": [node("approval", "wait_for_signal", signal="approve")]}
    )

    execution_id = await engine.start(wf, None)
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
    wf = unique_id("signal-early")
    await engine.register(
        {
            "id": wf,
            "nodes": [fn("first", "gated"), node("wait", "wait_for_signal", "first", signal="go")],
        }
    )

    execution_id = await engine.start(wf, None)
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
    wf = unique_id("signal-finished")
    await engine.register({"id": wf, "nodes": [fn("a", "echo")]})
    result = await engine.run(wf, 1, timeout=10)

    with pytest.raises(CommandRejectedError, match="succeeded"):
        await engine.signal(result.execution_id, "anything", {})


async def test_one_signal_reaches_every_node_waiting_for_it(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = unique_id("signal-many")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("w1", "wait_for_signal", signal="go"),
                node("w2", "wait_for_signal", signal="go"),
                fn("both", "echo", "w1", "w2"),
            ],
        }
    )

    execution_id = await engine.start(wf, None)
    await wait_node(engine, execution_id, "w1", NodeStatus.WAITING)
    await wait_node(engine, execution_id, "w2", NodeStatus.WAITING)
    await engine.signal(execution_id, "go", "now")
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received["both"] == [{"w1": "now", "w2": "now"}]


async def test_signal_timeout_is_caught_by_the_error_port(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = unique_id("signal-timeout")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("approval", "wait_for_signal", signal="approve", timeout="80ms"),
                fn("approved", "echo", "approval"),
                fn("escalate", "echo", "approval.error"),
            ],
        }
    )

    started = time.monotonic()
    result = await engine.run(wf, None, timeout=10)

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
    wf = unique_id("signal-timeout-fail")
    await engine.register(
        {"id": wf, "nodes": [node("approval", "wait_for_signal", signal="ok", timeout=0.05)]}
    )

    result = await engine.run(wf, None, timeout=10)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert (result.error.type, result.error.node_id) == ("Timeout", "approval")


async def test_signal_after_its_timeout_is_refused(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = unique_id("signal-too-late")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("approval", "wait_for_signal", signal="ok", timeout=0.05),
                fn("caught", "echo", "approval.error"),
                node("keep_alive", "wait_for_signal", signal="finish"),
            ],
        }
    )

    execution_id = await engine.start(wf, None)
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
    wf = unique_id("delay")
    await engine.register(
        {
            "id": wf,
            "nodes": [node("nap", "delay", duration="150ms"), fn("after", "echo", "nap")],
        }
    )

    started = time.monotonic()
    execution_id = await engine.start(wf, {"x": 1})
    state = await wait_node(engine, execution_id, "nap", NodeStatus.WAITING)
    assert state.output is None
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.14
    assert received["after"] == [{"x": 1}]


async def test_delay_until_a_past_time_completes_at_once(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = unique_id("delay-past")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("nap", "delay", until="2000-01-01T00:00:00Z"),
                fn("after", "echo", "nap"),
            ],
        }
    )

    started = time.monotonic()
    result = await engine.run(wf, "now", timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "now"
    assert time.monotonic() - started < 1.0


async def test_delay_until_a_templated_future_time(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = unique_id("delay-until")
    await engine.register(
        {
            "id": wf,
            "nodes": [node("nap", "delay", until="${ input.at }"), fn("after", "echo", "nap")],
        }
    )

    at = (datetime.now(UTC) + timedelta(milliseconds=200)).isoformat()
    started = time.monotonic()
    result = await engine.run(wf, {"at": at}, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.15
    assert received["after"] == [{"at": at}]


async def test_delay_until_that_is_not_a_time_fails_the_node_clearly(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = unique_id("delay-bad")
    await engine.register({"id": wf, "nodes": [node("nap", "delay", until="${ input.at }")]})

    result = await engine.run(wf, {"at": "next tuesday"}, timeout=10)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "nap"
    assert "until" in result.error.message
