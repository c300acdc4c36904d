"""The ``.error`` (catch) and ``.always`` (finally) ports, unhandled failures and ``fail``
nodes (DESIGN §2 "Edges and ports", "Outcome of an execution")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import EventLog, InboxLog, deploy, eventually, fn, node, statuses


def _registry(calls: dict[str, list[Any]]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("record")
    async def record(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        return {"from": ctx.node_id}

    @reg.task("explode")
    async def explode(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        raise RuntimeError(f"{ctx.node_id} exploded")

    @reg.task("maybe")
    async def maybe(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        if data.get("fail"):
            raise ValueError("bad value")
        return "fine"

    return reg


async def test_error_port_runs_only_on_failure_and_the_execution_succeeds(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "catch",
        fn("work", "maybe"),
        fn("next", "record", "work"),
        fn("handle", "record", "work.error"),
    )

    ok = await wf.run({"fail": False})
    assert ok.status == ExecutionStatus.SUCCEEDED
    assert "handle" not in calls
    assert (await engine.status(ok.execution_id)).nodes["handle"].status == NodeStatus.SKIPPED

    calls.clear()
    failed = await wf.run({"fail": True})

    assert failed.status == ExecutionStatus.SUCCEEDED
    assert failed.error is None
    assert failed.output == {"from": "handle"}
    assert "next" not in calls
    [error] = calls["handle"]
    assert isinstance(error, dict)
    assert error["type"] == "ValueError"
    assert error["message"] == "bad value"
    assert error["node_id"] == "work"
    assert error["attempt"] == 1
    snapshot = await engine.status(failed.execution_id)
    work = snapshot.nodes["work"]
    assert work.status == NodeStatus.FAILED
    assert work.error is not None
    assert (work.error.type, work.error.message, work.error.node_id) == (
        "ValueError",
        "bad value",
        "work",
    )
    assert statuses(snapshot, "next", "handle") == {
        "next": NodeStatus.SKIPPED,
        "handle": NodeStatus.SUCCEEDED,
    }


@pytest.mark.parametrize("fail", [False, True])
async def test_always_port_runs_on_success_and_on_failure(make_engine, fail):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine, "finally", fn("work", "maybe"), fn("cleanup", "record", "work.always")
    )

    result = await wf.run({"fail": fail})

    assert calls["cleanup"] != []
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["cleanup"].status == NodeStatus.SUCCEEDED
    if fail:
        # a finally branch does not handle the failure
        assert result.status == ExecutionStatus.FAILED
        assert result.error is not None
        assert result.error.node_id == "work"
        assert calls["cleanup"][0]["type"] == "ValueError"
    else:
        assert result.status == ExecutionStatus.SUCCEEDED
        assert calls["cleanup"] == ["fine"]


async def test_unhandled_failure_cancels_siblings_ignores_late_results_runs_finally(make_engine):
    reg = TaskRegistry()
    calls: list[str] = []
    sibling_saw_cancel = asyncio.Event()

    @reg.task("boom")
    async def boom(data):
        await asyncio.sleep(0.03)
        calls.append("boom")
        raise RuntimeError("first failure")

    @reg.task("stubborn")
    async def stubborn(data, ctx):
        calls.append("sibling")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                sibling_saw_cancel.set()
            # ignore the cancellation and report a (late) result anyway
            await asyncio.sleep(0.05)
            return "late"
        return "on time"

    @reg.task("record")
    async def record(data, ctx):
        await asyncio.sleep(0.03)
        if ctx.node_id == "cleanup":
            # the finally branch ends after the late result is out: the orchestrator
            # gets the late result before the execution can end
            await eventually(lambda: inbox.results(ctx.execution_id, "sibling", attempt=1))
        calls.append(ctx.node_id)
        return ctx.node_id

    engine = await make_engine(reg)
    inbox = InboxLog.attach(engine)
    wf = await deploy(
        engine,
        "unhandled",
        fn("boom", "boom"),
        fn("sibling", "stubborn"),
        fn("after_sibling", "record", "sibling"),
        fn("after_boom", "record", "boom"),
        fn("cleanup", "record", "boom.always"),
        fn("cleanup_more", "record", "cleanup"),
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "RuntimeError"
    assert result.error.message == "first failure"
    assert result.error.node_id == "boom"
    # finally branches ran to completion before the execution ended
    assert calls[-2:] == ["cleanup", "cleanup_more"]
    assert "after_sibling" not in calls
    assert "after_boom" not in calls
    async with asyncio.timeout(5):
        await sibling_saw_cancel.wait()
    [late] = inbox.results(result.execution_id, "sibling", attempt=1)
    assert late.output == "late"
    snapshot = await engine.status(result.execution_id)
    assert snapshot.meta.status == ExecutionStatus.FAILED
    sibling = snapshot.nodes["sibling"]
    assert sibling.status == NodeStatus.CANCELLED
    assert sibling.output is None
    assert sibling.error is not None
    assert sibling.error.type == "Cancelled"
    assert statuses(snapshot, "boom", "cleanup", "cleanup_more") == {
        "boom": NodeStatus.FAILED,
        "cleanup": NodeStatus.SUCCEEDED,
        "cleanup_more": NodeStatus.SUCCEEDED,
    }
    assert snapshot.nodes.get("after_sibling") is None or snapshot.nodes[
        "after_sibling"
    ].status in (NodeStatus.PENDING, NodeStatus.CANCELLED, NodeStatus.SKIPPED)


async def test_execution_error_is_the_first_unhandled_failure(make_engine):
    reg = TaskRegistry()

    @reg.task("fail_after")
    async def fail_after(data, ctx):
        await asyncio.sleep(data[ctx.node_id])
        raise RuntimeError(f"{ctx.node_id} failed")

    engine = await make_engine(reg)
    wf = await deploy(engine, "first-error", fn("early", "fail_after"), fn("late", "fail_after"))

    result = await wf.run({"early": 0.01, "late": 0.2})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert (result.error.node_id, result.error.message) == ("early", "early failed")
    snapshot = await engine.status(result.execution_id)
    assert snapshot.meta.error == result.error
    assert snapshot.nodes["late"].status == NodeStatus.CANCELLED


async def test_failing_error_handler_fails_the_execution_with_its_own_error(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine, "handler-fails", fn("work", "explode"), fn("handler", "explode", "work.error")
    )

    result = await wf.run({})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "handler"
    assert result.error.message == "handler exploded"


async def test_fail_node_without_error_port_fails_the_execution(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "fail-node",
        fn("check", "record"),
        node("reject", "fail", "check", error="order ${ input.id } rejected"),
        fn("tidy", "record", "reject.always"),
    )

    result = await wf.run({"id": 42})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "Fail"
    assert result.error.message == "order 42 rejected"
    assert result.error.node_id == "reject"
    # .always successors of a fail node run as finally branches
    assert "tidy" in calls
    await events.wait_for(result.execution_id, f"execution.{wf.id}.failed")
    [failed] = events.find(result.execution_id, f"node.{wf.id}.reject.failed")
    assert failed.data["error"]["message"] == "order 42 rejected"


async def test_fail_node_with_structured_error_is_caught_by_error_port(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "fail-caught",
        node(
            "reject",
            "fail",
            error={
                "type": "Rejected",
                "message": "too big: ${ input.total }",
                "details": {"limit": 100},
            },
        ),
        node(
            "explain",
            "transform",
            "reject.error",
            output={
                "why": "${ nodes.reject.error.message }",
                "kind": "${ data.type }",
                "limit": "${ data.details.limit }",
            },
        ),
    )

    result = await wf.run({"total": 500})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"why": "too big: 500", "kind": "Rejected", "limit": 100}
    snapshot = await engine.status(result.execution_id)
    reject = snapshot.nodes["reject"]
    assert reject.status == NodeStatus.FAILED
    assert reject.error is not None
    assert (reject.error.type, reject.error.details) == ("Rejected", {"limit": 100})


async def test_unhandled_failure_stops_queued_waiting_and_child_work(make_engine):
    reg = TaskRegistry()
    calls: list[str] = []
    gate = asyncio.Event()

    @reg.task("fail_soon")
    async def fail_soon(data, ctx):
        calls.append(ctx.node_id)
        await asyncio.sleep(0.05)
        raise RuntimeError("stop everything")

    @reg.task("gated")
    async def gated(data, ctx):
        calls.append(ctx.node_id)
        async with asyncio.timeout(5):
            await gate.wait()
        return data

    engine = await make_engine(reg)
    child = await deploy(engine, "child", fn("inner", "gated"))
    wf = await deploy(
        engine,
        "stop-all",
        fn("bad", "fail_soon"),
        node("sub", "sub_workflow", workflow=child.id),
        fn("busy", "gated"),
        fn("queued", "gated"),
        node("approval", "wait_for_signal", signal="ok"),
        node("nap", "delay", duration="5s"),
        max_concurrency=2,
    )

    try:
        result = await wf.run()
    finally:
        gate.set()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "bad"
    snapshot = await engine.status(result.execution_id)
    for node_id in ("busy", "queued", "sub", "approval", "nap"):
        assert snapshot.nodes[node_id].status == NodeStatus.CANCELLED, node_id
    assert "queued" not in calls
    [child_id] = snapshot.nodes["sub"].children
    assert (await engine.wait(child_id, 10)).status == ExecutionStatus.CANCELLED


async def test_unhandled_failure_stops_a_node_waiting_to_retry(make_engine):
    reg = TaskRegistry()
    calls: list[str] = []

    @reg.task("fail_soon")
    async def fail_soon(data, ctx):
        await asyncio.sleep(0.05)
        raise RuntimeError("stop everything")

    @reg.task("flaky")
    async def flaky(data, ctx):
        calls.append(ctx.node_id)
        raise RuntimeError("retry me later")

    @reg.task("fails_once")
    async def fails_once(data, ctx):
        if ctx.attempt == 1:
            raise RuntimeError("retry me too")
        return "retried"

    engine = await make_engine(reg)
    retry = {"max_attempts": 3, "initial_interval": "300ms", "jitter": False}
    wf = await deploy(
        engine, "stop-retry", fn("bad", "fail_soon"), fn("retrying", "flaky", retry=retry)
    )
    later = await deploy(engine, "later-retry", fn("again", "fails_once", retry=retry))

    result = await wf.run()
    # a retry with the same delay, due after the stopped one would have been, runs
    assert (await later.run()).output == "retried"

    assert result.status == ExecutionStatus.FAILED
    assert calls == ["retrying"]
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["retrying"].status == NodeStatus.CANCELLED


async def test_a_failing_finally_branch_keeps_the_first_error(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine, "finally-fails", fn("work", "explode"), fn("cleanup", "explode", "work.always")
    )

    result = await wf.run({})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert (result.error.node_id, result.error.message) == ("work", "work exploded")
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["cleanup"].status == NodeStatus.FAILED
