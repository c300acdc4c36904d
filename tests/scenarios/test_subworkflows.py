"""``sub_workflow`` nodes: child executions (DESIGN §2 node types)."""

from __future__ import annotations

import asyncio
from typing import Any

from spane import ExecutionStatus, NodeStatus, TaskRegistry
from spane.schemas.state import TERMINAL_EXECUTION_STATUSES

from .helpers import EventLog, deploy, fn, node, unique_id, wait_node, wait_status


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
    child = await deploy(
        engine,
        "child",
        fn("twice", "double"),
        fn("again", "double", "twice"),
        output={"result": "${ nodes.again.output.n }", "input_seen": "${ input }"},
    )
    parent = await deploy(
        engine,
        "parent",
        fn("prepare", "echo"),
        node("sub", "sub_workflow", "prepare", workflow=child.id, input={"n": "${ input.x }"}),
        fn("use", "echo", "sub"),
    )

    result = await parent.run({"x": 3})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"result": 12, "input_seen": {"n": 3}}
    assert calls["twice"] == [{"n": 3}]
    sub = (await engine.status(result.execution_id)).nodes["sub"]
    assert sub.status == NodeStatus.SUCCEEDED
    [child_id] = sub.children
    await wait_status(engine, child_id, *TERMINAL_EXECUTION_STATUSES)
    child_snapshot = await engine.status(child_id)
    assert child_snapshot.meta.workflow_id == child.id
    assert child_snapshot.meta.status == ExecutionStatus.SUCCEEDED
    assert child_snapshot.meta.parent is not None
    assert child_snapshot.meta.parent.execution_id == result.execution_id


async def test_child_failure_is_a_node_failure_catchable_by_the_error_port(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    child = await deploy(engine, "child-fails", fn("work", "explode"))
    parent = await deploy(
        engine,
        "parent-catches",
        node("sub", "sub_workflow", workflow=child.id),
        fn("next", "echo", "sub"),
        fn("recover", "echo", "sub.error"),
    )

    result = await parent.run({"n": 1})

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
    child = await deploy(engine, "child-fails", fn("work", "explode"))
    parent = await deploy(engine, "parent-fails", node("sub", "sub_workflow", workflow=child.id))

    result = await parent.run({})

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
    child = await deploy(engine, "child-async", fn("work", "gated"))
    parent = await deploy(
        engine, "parent-async", node("sub", "sub_workflow", workflow=child.id, wait=False)
    )

    try:
        result = await parent.run("hello")
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
    missing = unique_id("never-registered")
    parent = await deploy(
        engine,
        "parent-unknown",
        node("sub", "sub_workflow", workflow=missing),
        fn("recover", "echo", "sub.error"),
    )

    result = await parent.run({})

    assert result.status == ExecutionStatus.SUCCEEDED
    [error] = calls["recover"]
    assert error["node_id"] == "sub"
    assert missing in error["message"]
    assert (await engine.status(result.execution_id)).nodes["sub"].status == NodeStatus.FAILED


async def test_nested_sub_workflows(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    inner = await deploy(engine, "inner", fn("twice", "double"))
    middle = await deploy(
        engine,
        "middle",
        node("call_inner", "sub_workflow", workflow=inner.id),
        fn("twice_again", "double", "call_inner"),
    )
    outer = await deploy(engine, "outer", node("call_middle", "sub_workflow", workflow=middle.id))

    result = await outer.run({"n": 5})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"n": 20}


async def test_child_lifecycle_events_name_the_parent(make_engine):
    """A sub-workflow's execution is announced as ``child.<workflow>.<status>``, so that
    ``execution.<workflow>.*`` means top-level executions only."""
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    events = await EventLog.attach(engine, "child.#")
    top_level = await EventLog.attach(engine, "execution.#")
    child = await deploy(engine, "child-events", fn("work", "echo"))
    parent = await deploy(engine, "parent-events", node("sub", "sub_workflow", workflow=child.id))

    result = await parent.run(1)

    [child_id] = (await engine.status(result.execution_id)).nodes["sub"].children
    [started] = await events.wait_for(child_id, f"child.{child.id}.started")
    [finished] = await events.wait_for(child_id, f"child.{child.id}.succeeded")
    assert started.data["parent_execution_id"] == result.execution_id
    assert finished.data["parent_execution_id"] == result.execution_id
    await top_level.wait_for(result.execution_id, f"execution.{parent.id}.succeeded")
    assert {event.subject for _, event in top_level.events} == {result.execution_id}


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
    child = await deploy(engine, "child-slow", fn("work", "hangs"))
    parent = await deploy(
        engine, "parent-timeout", node("sub", "sub_workflow", workflow=child.id, timeout="100ms")
    )

    result = await parent.run()

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
    child = await deploy(engine, "child-flaky", fn("work", "flaky"))
    parent = await deploy(
        engine,
        "parent-retry",
        node(
            "sub",
            "sub_workflow",
            workflow=child.id,
            retry={"max_attempts": 2, "initial_interval": 0.01, "jitter": False},
        ),
    )

    result = await parent.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "second child ok"
    sub = (await engine.status(result.execution_id)).nodes["sub"]
    assert sub.attempt == 2
    assert len(sub.children) == 2
    assert list(sub.children) == runs


async def test_recursion_beyond_the_depth_limit_fails(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = unique_id("recursive")  # the workflow calls itself: its id is needed before it exists
    await engine.register({"id": wf, "nodes": [node("again", "sub_workflow", workflow=wf)]})

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
    child = await deploy(engine, "child-wait", fn("work", "gated"))
    parent = await deploy(engine, "parent-wait", node("sub", "sub_workflow", workflow=child.id))

    execution_id = await parent.start(9)
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
    v1 = await engine.register({"id": child, "nodes": [fn("a", "echo")], "output": "v1"})
    v2 = await engine.register({"id": child, "nodes": [fn("a", "echo")], "output": "v2"})
    assert v2.version == v1.version + 1
    parent = await deploy(
        engine,
        "parent-pins",
        node("pinned", "sub_workflow", workflow=child, version=v1.version),
        node("latest", "sub_workflow", workflow=child),
    )

    result = await parent.run()

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
    child = await deploy(engine, "child-cancelled", fn("work", "hangs"))
    parent = await deploy(
        engine,
        "parent-of-cancelled",
        node("sub", "sub_workflow", workflow=child.id),
        fn("recover", "echo", "sub.error"),
    )

    execution_id = await parent.start()
    sub = await wait_node(engine, execution_id, "sub", NodeStatus.WAITING)
    [child_id] = sub.children
    await wait_node(engine, child_id, "work", NodeStatus.RUNNING)
    await engine.cancel(child_id, reason="not needed")
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output["node_id"] == "sub"
    assert result.output["type"] == "Cancelled"
    assert "not needed" in result.output["message"]
