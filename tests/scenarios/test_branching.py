"""``when`` guards and ``switch`` nodes (DESIGN §2 "Edges and ports", node types)."""

from __future__ import annotations

from typing import Any

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import EventLog, deploy, fn, node, statuses


def _registry(calls: dict[str, list[Any]]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("record")
    async def record(data, ctx):
        calls.setdefault(ctx.node_id, []).append(data)
        return {"from": ctx.node_id, "data": data}

    return reg


async def test_false_guard_skips_the_node_and_its_successors_but_always_fires(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "guard",
        fn("a", "record"),
        fn("b", "record", "a", when="input.go"),
        fn("c", "record", "b"),
        fn("d", "record", "c"),
        fn("tidy", "record", "b.always"),
        fn("on_error", "record", "b.error"),
    )

    result = await wf.run({"go": False})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert set(calls) == {"a", "tidy"}
    snapshot = await engine.status(result.execution_id)
    assert statuses(snapshot, "b", "c", "d", "tidy", "on_error") == {
        "b": NodeStatus.SKIPPED,
        "c": NodeStatus.SKIPPED,
        "d": NodeStatus.SKIPPED,
        "tidy": NodeStatus.SUCCEEDED,
        "on_error": NodeStatus.SKIPPED,
    }
    # default output: the single leaf that succeeded
    assert result.output == {"from": "tidy", "data": None}
    await events.wait_for(result.execution_id, f"node.{wf.id}.b.skipped")
    assert events.find(result.execution_id, f"node.{wf.id}.b.started") == []


async def test_true_guard_runs_the_node(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "guard-true",
        fn("a", "record"),
        fn("b", "record", "a", when="nodes.a.output.data.n > 1 && data.from == 'a'"),
    )

    result = await wf.run({"n": 2})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert set(calls) == {"a", "b"}
    assert result.output["from"] == "b"


async def test_guard_that_cannot_be_evaluated_fails_the_node_naming_it(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine, "guard-error", fn("a", "record"), fn("b", "record", "a", when="input.missing > 1")
    )

    result = await wf.run({"n": 1})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "b"
    assert "'b'" in result.error.message
    assert "when" in result.error.message
    assert "b" not in calls


SWITCH = [
    node(
        "route",
        "switch",
        cases=[
            {"name": "big", "when": "input.total >= 100"},
            {"name": "medium", "when": "input.total >= 10"},
            {"name": "even", "when": "input.total % 2 == 0"},
        ],
    ),
    fn("big", "record", "route.big"),
    fn("medium", "record", "route.medium"),
    fn("even", "record", "route.even"),
    fn("other", "record", "route.default"),
    fn("audit", "record", "route"),
]


@pytest.mark.parametrize(
    ("total", "taken"),
    [
        (500, "big"),  # matches big, medium and even: the first match wins
        (12, "medium"),  # matches medium and even
        (4, "even"),
        (3, "other"),  # nothing matches: default
    ],
)
async def test_switch_fires_the_first_matching_case_else_default(make_engine, total, taken):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(engine, "switch", *SWITCH)

    result = await wf.run({"total": total})

    assert result.status == ExecutionStatus.SUCCEEDED
    # the switch's success port always fires; exactly one case (or default) branch runs
    assert set(calls) == {taken, "audit"}
    # a switch passes its input on
    assert calls[taken] == [{"total": total}]
    assert calls["audit"] == [{"total": total}]
    snapshot = await engine.status(result.execution_id)
    branches = {"big", "medium", "even", "other"}
    assert statuses(snapshot, *branches) == {
        branch: NodeStatus.SUCCEEDED if branch == taken else NodeStatus.SKIPPED
        for branch in branches
    }
    assert snapshot.nodes["route"].output == {"total": total}


async def test_switch_branches_rejoin(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "switch-join",
        node("route", "switch", cases=[{"name": "a", "when": "input == 'a'"}]),
        fn("on_a", "record", "route.a"),
        fn("on_default", "record", "route.default"),
        fn("ship", "record", "on_a", "on_default"),
    )

    first = await wf.run("a")
    second = await wf.run("z")

    assert first.output == {"from": "ship", "data": {"from": "on_a", "data": "a"}}
    assert second.output == {"from": "ship", "data": {"from": "on_default", "data": "z"}}
    assert len(calls["ship"]) == 2
