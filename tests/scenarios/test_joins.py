"""Joins all / any / at_least and skip propagation (DESIGN §2 "Joins and skip propagation")."""

from __future__ import annotations

import asyncio
from typing import Any

from spane import ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import EventLog, deploy, fn, node, statuses, wait_node


def _registry(calls: dict[str, list[Any]]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("record")
    async def record(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        return {"from": ctx.node_id}

    return reg


async def test_if_else_that_rejoins_runs_the_join_once_with_the_live_branch(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "rejoin",
        fn("check", "record"),
        fn("yes", "record", "check", when="input.ok"),
        fn("no", "record", "check", when="!input.ok"),
        fn("merge", "record", "yes", "no"),
        fn("after", "record", "merge"),
    )

    for ok, live, dead in ((True, "yes", "no"), (False, "no", "yes")):
        calls.clear()
        result = await wf.run({"ok": ok})

        assert result.status == ExecutionStatus.SUCCEEDED
        assert result.output == {"from": "after"}
        assert set(calls) == {"check", live, "merge", "after"}
        # one fired upstream: the join receives that node's output itself
        assert calls["merge"] == [{"from": live}]
        snapshot = await engine.status(result.execution_id)
        assert statuses(snapshot, live, dead, "merge") == {
            live: NodeStatus.SUCCEEDED,
            dead: NodeStatus.SKIPPED,
            "merge": NodeStatus.SUCCEEDED,
        }


async def test_all_join_is_skipped_when_no_edge_fired_and_skip_propagates(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "all-skip",
        fn("root", "record"),
        fn("b", "record", "root", when="false"),
        fn("c", "record", "root", when="false"),
        fn("join", "record", "b", "c"),
        fn("next", "record", "join"),
        fn("last", "record", "next"),
        fn("finally", "record", "join.always"),
    )

    result = await wf.run({})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert set(calls) == {"root", "finally"}
    snapshot = await engine.status(result.execution_id)
    assert statuses(snapshot, "b", "c", "join", "next", "last", "finally") == {
        "b": NodeStatus.SKIPPED,
        "c": NodeStatus.SKIPPED,
        "join": NodeStatus.SKIPPED,
        "next": NodeStatus.SKIPPED,
        "last": NodeStatus.SKIPPED,
        "finally": NodeStatus.SUCCEEDED,
    }


async def test_any_join_fires_once_and_the_execution_waits_for_the_late_branch(make_engine):
    reg = TaskRegistry()
    join_calls: list[Any] = []
    join_ran = asyncio.Event()

    @reg.task("fast")
    async def fast(data):
        return "fast"

    @reg.task("slow")
    async def slow(data):
        # ends only after the join ran: a join waiting for this branch would time it out
        async with asyncio.timeout(5):
            await join_ran.wait()
        return "slow"

    @reg.task("first")
    async def first(data):
        join_calls.append(data)
        join_ran.set()
        return data

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine, "any", fn("f", "fast"), fn("s", "slow"), fn("j", "first", "f", "s", join="any")
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED, "the any-join waited for the slow branch"
    assert join_calls == ["fast"]
    snapshot = await engine.status(result.execution_id)
    assert statuses(snapshot, "f", "s", "j") == {
        "f": NodeStatus.SUCCEEDED,
        "s": NodeStatus.SUCCEEDED,
        "j": NodeStatus.SUCCEEDED,
    }
    assert snapshot.nodes["s"].output == "slow"
    await events.wait_for(result.execution_id, f"execution.{wf.id}.succeeded")
    keys = events.keys(result.execution_id)
    assert keys.count(f"node.{wf.id}.j.started") == 1
    assert keys.index(f"node.{wf.id}.s.succeeded") < keys.index(f"execution.{wf.id}.succeeded")


async def test_at_least_fires_after_n_edges_and_later_edges_do_not_retrigger(make_engine):
    reg = TaskRegistry()
    join_calls: list[Any] = []
    quorum_ran = asyncio.Event()

    @reg.task("wait_ms")
    async def wait_ms(data, ctx):
        await asyncio.sleep(data[ctx.node_id] / 1000)
        return ctx.node_id

    @reg.task("after_quorum")
    async def after_quorum(data, ctx):
        async with asyncio.timeout(5):
            await quorum_ran.wait()
        return ctx.node_id

    @reg.task("join")
    async def join(data):
        join_calls.append(data)
        quorum_ran.set()
        return sorted(data)

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "at-least",
        fn("a", "wait_ms"),
        fn("b", "wait_ms"),
        fn("c", "after_quorum"),  # ends once the quorum ran
        fn("quorum", "join", "a", "b", "c", join={"at_least": 2}),
    )

    result = await wf.run({"a": 5, "b": 40})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert join_calls == [{"a": "a", "b": "b"}]
    assert result.output == ["a", "b"]
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["c"].status == NodeStatus.SUCCEEDED


async def test_at_least_is_skipped_as_soon_as_it_becomes_impossible(make_engine):
    reg = TaskRegistry()
    gate = asyncio.Event()
    calls: list[str] = []

    @reg.task("record")
    async def record(data, ctx):
        calls.append(ctx.node_id)
        return ctx.node_id

    @reg.task("hold")
    async def hold(data, ctx):
        async with asyncio.timeout(5):
            await gate.wait()
        calls.append(ctx.node_id)
        return ctx.node_id

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "at-least-skip",
        node("start", "noop"),
        fn("b", "record", "start", when="false"),
        fn("c", "record", "start", when="false"),
        fn("d", "hold", "start"),
        fn("quorum", "record", "b", "c", "d", join={"at_least": 2}),
        fn("then", "record", "quorum"),
        fn("cleanup", "record", "quorum.always"),
    )

    execution_id = await wf.start({})
    try:
        await wait_node(engine, execution_id, "quorum", NodeStatus.SKIPPED)
        snapshot = await engine.status(execution_id)
        assert snapshot.nodes["d"].status == NodeStatus.RUNNING
    finally:
        gate.set()
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert sorted(calls) == ["cleanup", "d"]
    snapshot = await engine.status(execution_id)
    assert statuses(snapshot, "quorum", "then", "cleanup", "d") == {
        "quorum": NodeStatus.SKIPPED,
        "then": NodeStatus.SKIPPED,
        "cleanup": NodeStatus.SUCCEEDED,
        "d": NodeStatus.SUCCEEDED,
    }


async def test_any_join_is_skipped_when_every_edge_settled_without_firing(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "any-skip",
        fn("a", "record", when="false"),
        fn("b", "record", when="false"),
        fn("j", "record", "a", "b", join="any"),
    )

    result = await wf.run({})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert calls == {}
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["j"].status == NodeStatus.SKIPPED


async def test_join_mixing_error_and_success_ports_runs_on_either_outcome(make_engine):
    reg = TaskRegistry()
    seen: list[Any] = []

    @reg.task("maybe_fail")
    async def maybe_fail(data):
        if data["fail"]:
            raise RuntimeError("boom")
        return "ok"

    @reg.task("report")
    async def report(data):
        seen.append(data)
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine, "either", fn("work", "maybe_fail"), fn("report", "report", "work", "work.error")
    )

    ok = await wf.run({"fail": False})
    failed = await wf.run({"fail": True})

    assert ok.status == ExecutionStatus.SUCCEEDED
    assert ok.output == "ok"
    assert failed.status == ExecutionStatus.SUCCEEDED
    assert failed.output["type"] == "RuntimeError"
    assert failed.output["message"] == "boom"
    assert failed.output["node_id"] == "work"
    assert len(seen) == 2
