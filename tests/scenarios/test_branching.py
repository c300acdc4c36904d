"""``when`` guards and ``switch`` nodes (DESIGN §2 "Edges and ports", node types)."""

from __future__ import annotations

from typing import Any

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import EventLog, fn, node, statuses, unique_id


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
    wf = unique_id("guard")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                fn("a", "record"),
                fn("b", "record", "a", when="input.go"),
                fn("c", "record", "b"),
                fn("d", "record", "c"),
                fn("tidy", "record", "b.always"),
                fn("on_error", "record", "b.error"),
            ],
        }
    )

    result = await engine.run(wf, {"go": False}, timeout=10)

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
    await events.wait_for(result.execution_id, f"node.{wf}.b.skipped")
    assert events.find(result.execution_id, f"node.{wf}.b.started") == []


async def test_true_guard_runs_the_node(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = unique_id("guard-true")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                fn("a", "record"),
                fn("b", "record", "a", when="nodes.a.output.data.n > 1 && data.from == 'a'"),
            ],
        }
    )

    result = await engine.run(wf, {"n": 2}, timeout=10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert set(calls) == {"a", "b"}
    assert result.output["from"] == "b"


async def test_guard_that_cannot_be_evaluated_fails_the_node_naming_it(make_engine):
    calls: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(calls))
    wf = unique_id("guard-error")
    await engine.register(
        {"id": wf, "nodes": [fn("a", "record"), fn("b", "record", "a", when="input.missing > 1")]}
    )

    result = await engine.run(wf, {"n": 1}, timeout=10)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "b"
    assert "'b'" in result.error.message
    assert "when" in result.error.message
    assert "b" not in calls


def _switch_workflow(wf: str) -> dict[str, object]:
    return {
        "id": wf,
        "nodes": [
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
        ],
    }


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
    wf = unique_id("switch")
    await engine.register(_switch_workflow(wf))

    result = await engine.run(wf, {"total": total}, timeout=10)

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
    wf = unique_id("switch-join")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                node("route", "switch", cases=[{"name": "a", "when": "input == 'a'"}]),
                fn("on_a", "record", "route.a"),
                fn("on_default", "record", "route.default"),
                fn("ship", "record", "on_a", "on_default"),
            ],
        }
    )

    first = await engine.run(wf, "a", timeout=10)
    second = await engine.run(wf, "z", timeout=10)

    assert first.output == {"from": "ship", "data": {"from": "on_a", "data": "a"}}
    assert second.output == {"from": "ship", "data": {"from": "on_default", "data": "z"}}
    assert len(calls["ship"]) == 2
