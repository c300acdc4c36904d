"""``sub_workflow`` nodes: child executions (DESIGN §2 node types)."""

from __future__ import annotations

import asyncio
from typing import Any

from spane import ExecutionStatus, NodeStatus, TaskRegistry
from spane.schemas.state import TERMINAL_EXECUTION_STATUSES

from .helpers import EventLog, fn, node, unique_id, wait_node, wait_status


def _registry(calls: dict[str, list[Any]]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("double")
    async def double(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        return {"n": data["n"] * 2}

    @reg.task("explode")
    async def explode(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        raise RuntimeError("child broke")

    @reg.task("echo")
    async def echo(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        return data

    return reg


async def test_waiting_sub_workflow_outputs_the_child_output(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    child = unique_id("child")
    parent = unique_id("parent")
    await engine.register(
        {
            "id": child,
            "nodes": [fn("twice", "double"), fn("again", "double", "twice")],
            "output": {"result": "${ nodes.again.output.n }", "input_seen": "${ input }"},
        }
    )
    await engine.register(
        {
            "id": parent,
            "nodes": [
                fn("prepare", "echo"),
                node("sub", "sub_workflow", "prepare", workflow=child, input={"n": "${ input.x }"}),
                fn("use", "echo", "sub"),
            ],
        }
    )

    result = await engine.run(parent, {"x": 3}, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"result": 12, "input_seen": {"n": 3}}
    assert calls["twice"] == [{"n": 3}]
    sub = (await engine.status(result.execution_id)).nodes["sub"]
    assert sub.status == NodeStatus.SUCCEEDED
    [child_id] = sub.children
    await wait_status(engine, child_id, *TERMINAL_EXECUTION_STATUSES)
    child_snapshot = await engine.status(child_id)
    assert child_snapshot.meta.workflow_id == child
    assert child_snapshot.meta.status == ExecutionStatus.SUCCEEDED
    assert child_snapshot.meta.parent is not None
    assert child_snapshot.meta.parent.execution_id == result.execution_id


async def test_child_failure_is_a_node_failure_catchable_by_the_error_port(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    child = unique_id("child-fails")
    parent = unique_id("parent-catches")
    await engine.register({"id": child, "nodes": [fn("work", "explode")]})
    await engine.register(
        {
            "id": parent,
            "nodes": [
                node("sub", "sub_workflow", workflow=child),
                fn("next", "echo", "sub"),
                fn("recover", "echo", "sub.error"),
            ],
        }
    )

    result = await engine.run(parent, {"n": 1}, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert "next" not in calls
    [error] = calls["recover"]
    assert error["node_id"] == "sub"
    assert error["type"] == "RuntimeError"
    assert "child broke" in error["message"]
    sub = (await engine.status(result.execution_id)).nodes["sub"]
    assert sub.status == NodeStatus.FAILED
    [child_id] = sub.children
    assert (await engine.wait(child_id, 10)).status == ExecutionStatus.FAILED


async def test_unhandled_child_failure_fails_the_parent(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    child = unique_id("child-fails")
    parent = unique_id("parent-fails")
    await engine.register({"id": child, "nodes": [fn("work", "explode")]})
    await engine.register({"id": parent, "nodes": [node("sub", "sub_workflow", workflow=child)]})

    result = await engine.run(parent, {}, timeout=10)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "sub"
    assert "child broke" in result.error.message


async def test_fire_and_forget_sub_workflow_outputs_the_child_execution_id(make_engine):
    reg = TaskRegistry()
    gate = asyncio.Event()

    @reg.task("gated")
    async def gated(data):
        async with asyncio.timeout(5):
            await gate.wait()
        return {"child got": data}

    engine = await make_engine(reg)
    child = unique_id("child-async")
    parent = unique_id("parent-async")
    await engine.register({"id": child, "nodes": [fn("work", "gated")]})
    await engine.register(
        {"id": parent, "nodes": [node("sub", "sub_workflow", workflow=child, wait=False)]}
    )

    try:
        result = await engine.run(parent, "hello", timeout=10)
        # the parent finished while the child still runs
        assert result.status == ExecutionStatus.SUCCEEDED
        assert set(result.output) == {"execution_id"}
        child_id = result.output["execution_id"]
        await wait_status(engine, child_id, ExecutionStatus.RUNNING)
    finally:
        gate.set()
    child_result = await engine.wait(child_id, 10)
    assert child_result.status == ExecutionStatus.SUCCEEDED
    assert child_result.output == {"child got": "hello"}


async def test_unknown_child_workflow_fails_the_node(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    parent = unique_id("parent-unknown")
    missing = unique_id("never-registered")
    await engine.register(
        {
            "id": parent,
            "nodes": [
                node("sub", "sub_workflow", workflow=missing),
                fn("recover", "echo", "sub.error"),
            ],
        }
    )

    result = await engine.run(parent, {}, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    [error] = calls["recover"]
    assert error["node_id"] == "sub"
    assert missing in error["message"]
    assert (await engine.status(result.execution_id)).nodes["sub"].status == NodeStatus.FAILED


async def test_nested_sub_workflows(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    inner = unique_id("inner")
    middle = unique_id("middle")
    outer = unique_id("outer")
    await engine.register({"id": inner, "nodes": [fn("twice", "double")]})
    await engine.register(
        {
            "id": middle,
            "nodes": [
                node("call_inner", "sub_workflow", workflow=inner),
                fn("twice_again", "double", "call_inner"),
            ],
        }
    )
    await engine.register(
        {"id": outer, "nodes": [node("call_middle", "sub_workflow", workflow=middle)]}
    )

    result = await engine.run(outer, {"n": 5}, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"n": 20}


async def test_child_lifecycle_events_name_the_parent(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    events = await EventLog.attach(engine, "execution.#")
    child = unique_id("child-events")
    parent = unique_id("parent-events")
    await engine.register({"id": child, "nodes": [fn("work", "echo")]})
    await engine.register({"id": parent, "nodes": [node("sub", "sub_workflow", workflow=child)]})

    result = await engine.run(parent, 1, timeout=10)

    [child_id] = (await engine.status(result.execution_id)).nodes["sub"].children
    [started] = await events.wait_for(child_id, f"execution.{child}.started")
    [finished] = await events.wait_for(child_id, f"execution.{child}.succeeded")
    assert started.data["parent_execution_id"] == result.execution_id
    assert finished.data["parent_execution_id"] == result.execution_id


async def test_sub_workflow_timeout_cancels_the_child_and_fails_the_node(make_engine):
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
    child = unique_id("child-slow")
    parent = unique_id("parent-timeout")
    await engine.register({"id": child, "nodes": [fn("work", "hangs")]})
    await engine.register(
        {"id": parent, "nodes": [node("sub", "sub_workflow", workflow=child, timeout="100ms")]}
    )

    result = await engine.run(parent, None, timeout=10)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert (result.error.type, result.error.node_id) == ("Timeout", "sub")
    [child_id] = (await engine.status(result.execution_id)).nodes["sub"].children
    assert (await engine.wait(child_id, 10)).status == ExecutionStatus.CANCELLED
    async with asyncio.timeout(5):
        await saw_cancel.wait()


async def test_sub_workflow_is_retried_with_a_new_child(make_engine):
    reg = TaskRegistry()
    runs: list[str] = []

    @reg.task("flaky")
    async def flaky(data, ctx):
        runs.append(ctx.execution_id)
        if len(runs) == 1:
            raise RuntimeError("first child fails")
        return "second child ok"

    engine = await make_engine(reg)
    child = unique_id("child-flaky")
    parent = unique_id("parent-retry")
    await engine.register({"id": child, "nodes": [fn("work", "flaky")]})
    await engine.register(
        {
            "id": parent,
            "nodes": [
                node(
                    "sub",
                    "sub_workflow",
                    workflow=child,
                    retry={"max_attempts": 2, "initial_interval": 0.01, "jitter": False},
                )
            ],
        }
    )

    result = await engine.run(parent, None, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "second child ok"
    sub = (await engine.status(result.execution_id)).nodes["sub"]
    assert sub.attempt == 2
    assert len(sub.children) == 2
    assert list(sub.children) == runs


async def test_recursion_beyond_the_depth_limit_fails(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = unique_id("recursive")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("again", "sub_workflow", workflow=wf),
            ],
        }
    )

    result = await engine.run(wf, None, timeout=10)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "DepthLimitExceeded"


async def test_waiting_parent_reports_the_child_while_it_runs(make_engine):
    reg = TaskRegistry()
    gate = asyncio.Event()

    @reg.task("gated")
    async def gated(data):
        async with asyncio.timeout(5):
            await gate.wait()
        return data

    engine = await make_engine(reg)
    child = unique_id("child-wait")
    parent = unique_id("parent-wait")
    await engine.register({"id": child, "nodes": [fn("work", "gated")]})
    await engine.register({"id": parent, "nodes": [node("sub", "sub_workflow", workflow=child)]})

    execution_id = await engine.start(parent, 9)
    try:
        sub = await wait_node(engine, execution_id, "sub", NodeStatus.WAITING)
        assert len(sub.children) == 1
    finally:
        gate.set()
    assert (await engine.wait(execution_id, 10)).output == 9


async def test_sub_workflow_can_pin_a_child_version(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    child = unique_id("child-versions")
    parent = unique_id("parent-pins")
    v1 = await engine.register({"id": child, "nodes": [fn("a", "echo")], "output": "v1"})
    v2 = await engine.register({"id": child, "nodes": [fn("a", "echo")], "output": "v2"})
    assert v2.version == v1.version + 1
    await engine.register(
        {
            "id": parent,
            "nodes": [
                node("pinned", "sub_workflow", workflow=child, version=v1.version),
                node("latest", "sub_workflow", workflow=child),
            ],
        }
    )

    result = await engine.run(parent, None, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"pinned": "v1", "latest": "v2"}


async def test_cancelling_the_child_fails_the_parent_node(make_engine):
    reg = TaskRegistry()

    @reg.task("hangs")
    async def hangs(data):
        await asyncio.sleep(5)

    @reg.task("echo")
    async def echo(data):
        return data

    engine = await make_engine(reg)
    child = unique_id("child-cancelled")
    parent = unique_id("parent-of-cancelled")
    await engine.register({"id": child, "nodes": [fn("work", "hangs")]})
    await engine.register(
        {
            "id": parent,
            "nodes": [
                node("sub", "sub_workflow", workflow=child),
                fn("recover", "echo", "sub.error"),
            ],
        }
    )

    execution_id = await engine.start(parent, None)
    sub = await wait_node(engine, execution_id, "sub", NodeStatus.WAITING)
    [child_id] = sub.children
    await wait_node(engine, child_id, "work", NodeStatus.RUNNING)
    await engine.cancel(child_id, reason="not needed")
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output["node_id"] == "sub"
    assert result.output["type"] == "Cancelled"
    assert "not needed" in result.output["message"]
