"""What each node receives and what expressions see (DESIGN §2 "Data passing",
"Expressions"), plus transform and set nodes and the workflow output."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry

from .helpers import EventLog, deploy, fn, node, unique_id


def _registry(received: dict[str, list[Any]]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("echo")
    async def echo(data, ctx):
        received.setdefault(ctx.node_id, []).append(data)
        return data

    @reg.task("emit")
    async def emit(data, ctx):
        """Returns ``data[node_id]`` after ``data['delay'][node_id]`` seconds."""
        await asyncio.sleep(data.get("delay", {}).get(ctx.node_id, 0))
        return data[ctx.node_id]

    return reg


async def test_root_gets_the_input_and_a_single_upstream_passes_its_output(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine, "pass", fn("root", "emit"), fn("child", "echo", "root"), fn("leaf", "echo", "child")
    )

    result = await wf.run({"root": {"x": [1, 2]}})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received == {"child": [{"x": [1, 2]}], "leaf": [{"x": [1, 2]}]}
    assert result.output == {"x": [1, 2]}
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["root"].input == {"root": {"x": [1, 2]}}


AGGREGATES = [
    # the first listed upstream finishes last: order follows `after`, not completion
    ("map", {"p": {"k": "p", "a": 1}, "q": {"k": "q", "b": 2}}),
    ("list", [{"k": "p", "a": 1}, {"k": "q", "b": 2}]),
    ("merge", {"k": "q", "a": 1, "b": 2}),
]


@pytest.mark.parametrize(("aggregate", "expected"), AGGREGATES)
async def test_several_upstreams_are_aggregated(make_engine, aggregate, expected):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        f"agg-{aggregate}",
        fn("p", "emit"),
        fn("q", "emit"),
        fn("join", "echo", "p", "q", aggregate=aggregate),
    )

    data = {"p": {"k": "p", "a": 1}, "q": {"k": "q", "b": 2}, "delay": {"p": 0.05}}
    result = await wf.run(data)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received["join"] == [expected]


async def test_aggregate_first_passes_one_upstream_output(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "agg-first",
        fn("p", "emit"),
        fn("q", "emit"),
        fn("join", "echo", "p", "q", aggregate="first"),
    )

    data = {"p": "from-p", "q": "from-q", "delay": {"q": 0.05}}
    result = await wf.run(data)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received["join"] == ["from-p"]


async def test_map_aggregate_holds_only_the_edges_that_fired(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "agg-fired",
        fn("p", "emit"),
        fn("q", "emit", when="false"),
        fn("r", "emit"),
        fn("join", "echo", "p", "q", "r"),
    )

    result = await wf.run({"p": 1, "q": 2, "r": 3})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received["join"] == [{"p": 1, "r": 3}]


async def test_input_override_renders_templates_and_keeps_types(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "override",
        fn("a", "emit"),
        fn(
            "b",
            "echo",
            "a",
            input={
                "number": "${ input.n }",
                "doubled": "${ input.n * 2 }",
                "list": "${ nodes.a.output.items }",
                "map": "${ nodes.a.output }",
                "text": "n=${ input.n}, first=${ data.items[0] }",
                "flag": "${ input.n > 1 }",
                "var": "${ vars.region }",
                "literal": 7,
                "nested": ["${ input.n }", {"deep": "${ data.items.size() }"}],
                "execution": "${ execution.workflow_id }",
            },
        ),
        vars={"region": "eu"},
    )

    result = await wf.run({"n": 3, "a": {"items": ["x", "y"]}})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received["b"] == [
        {
            "number": 3,
            "doubled": 6,
            "list": ["x", "y"],
            "map": {"items": ["x", "y"]},
            "text": "n=3, first=x",
            "flag": True,
            "var": "eu",
            "literal": 7,
            "nested": [3, {"deep": 2}],
            "execution": wf.id,
        }
    ]
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["b"].input == received["b"][0]


async def test_input_override_on_a_root_replaces_the_execution_input(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine, "root-override", fn("a", "echo", input="${ input.user.name }"), fn("b", "echo", "a")
    )

    result = await wf.run({"user": {"name": "ada"}})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert received == {"a": ["ada"], "b": ["ada"]}


async def test_input_expression_error_fails_the_node_naming_node_and_field(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(engine, "bad-expr", fn("a", "echo", input={"x": "${ input.missing.deeper }"}))

    result = await wf.run({"n": 1})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "a"
    assert "'a'" in result.error.message
    assert "input" in result.error.message
    assert received == {}


async def test_transform_computes_output_with_cel_macros_and_spane_functions(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = await deploy(
        engine,
        "transform",
        node(
            "shape",
            "transform",
            output={
                "doubled": "${ input.items.map(x, x * 2) }",
                "big": "${ input.items.filter(x, x > 2) }",
                "all_positive": "${ input.items.all(x, x > 0) }",
                "total": "${ sum(input.items) }",
                "merged": "${ merge(input.a, input.b) }",
                "count": "${ size(input.items) }",
            },
        ),
        node("pick", "transform", "shape", output="${ data.total + data.count }"),
    )

    result = await wf.run({"items": [1, 2, 3, 4], "a": {"x": 1, "y": 1}, "b": {"y": 2}})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == 14
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["shape"].output == {
        "doubled": [2, 4, 6, 8],
        "big": [3, 4],
        "all_positive": True,
        "total": 10,
        "merged": {"x": 1, "y": 2},
        "count": 4,
    }


async def test_set_node_updates_vars_seen_by_later_expressions(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "set",
        node("remember", "set", vars={"count": "${ vars.count + input.n }", "seen": True}),
        fn("use", "echo", "remember", input={"count": "${ vars.count }"}),
        fn(
            "guarded",
            "echo",
            "use",
            when="vars.seen && vars.label == 'start'",
            input="${ vars }",
        ),
        vars={"count": 1, "label": "start"},
        output={"vars": "${ vars }", "set_output": "${ nodes.remember.output }"},
    )

    result = await wf.run({"n": 4})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert received["use"] == [{"count": 5}]
    assert received["guarded"] == [{"count": 5, "label": "start", "seen": True}]
    assert result.output == {
        "vars": {"count": 5, "label": "start", "seen": True},
        "set_output": {"count": 5, "seen": True},
    }
    snapshot = await engine.status(result.execution_id)
    assert snapshot.meta.vars == {"count": 5, "label": "start", "seen": True}


async def test_workflow_output_expression_keeps_its_type(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(
        engine,
        "output",
        fn("a", "emit"),
        fn("b", "emit"),
        output="${ nodes.a.output + nodes.b.output }",
    )

    result = await wf.run({"a": 40, "b": 2})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == 42


async def test_node_expressions_see_status_and_output_of_other_nodes(make_engine):
    reg = TaskRegistry()

    @reg.task("fail")
    async def fail(data):
        raise KeyError("nope")

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "status-refs",
        fn("a", "fail"),
        node(
            "report",
            "transform",
            "a.always",
            output={
                "status": "${ nodes.a.status }",
                "type": "${ nodes.a.error.type }",
                "node": "${ nodes.a.error.node_id }",
            },
        ),
    )

    result = await wf.run()

    # .always does not handle the failure, but the transform still ran as a finally branch
    assert result.status == ExecutionStatus.FAILED
    snapshot = await engine.status(result.execution_id)
    report = snapshot.nodes["report"]
    assert report.status == NodeStatus.SUCCEEDED
    assert report.output == {"status": "failed", "type": "KeyError", "node": "a"}


async def test_workflow_output_that_cannot_be_evaluated_fails_the_execution(make_engine):
    received: dict[str, list[Any]] = {}
    engine = await make_engine(_registry(received))
    wf = await deploy(engine, "bad-output", fn("a", "echo"), output="${ nodes.a.output.missing }")

    result = await wf.run({"present": 1})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert "output" in result.error.message
    assert received == {"a": [{"present": 1}]}


async def test_secrets_reach_the_task_but_are_never_stored_or_published(make_engine, monkeypatch):
    name = f"SPANE_SCENARIO_TOKEN_{unique_id('s').split('-')[1].upper()}"
    value = "s3cr3t-value-never-stored"
    monkeypatch.setenv("SPANE_SECRET_" + name, value)
    reg = TaskRegistry()
    received: list[Any] = []
    configs: list[Any] = []

    @reg.task("call_api")
    async def call_api(data):
        received.append(data)
        return {"authorized": data["auth"] == f"Bearer {value}"}

    @reg.task_type("uploader")
    async def uploader(data, config):
        configs.append(config)
        return {"has_key": config["key"] == value}

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "secrets",
        fn(
            "call",
            "call_api",
            input={"auth": "Bearer ${ secrets." + name + " }", "n": "${ input.n }"},
        ),
        node("upload", "uploader", "call", config={"key": "${ secrets." + name + " }"}),
    )

    result = await wf.run({"n": 1})
    await events.wait_for(result.execution_id, f"execution.{wf.id}.succeeded")

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert received == [{"auth": f"Bearer {value}", "n": 1}]
    assert configs == [{"key": value}]
    assert result.output == {"has_key": True}
    snapshot = await engine.status(result.execution_id)
    assert value not in repr(snapshot)
    assert value not in repr(events.of(result.execution_id))


async def test_missing_secret_fails_the_node_naming_the_secret(make_engine):
    name = f"SPANE_SCENARIO_MISSING_{unique_id('s').split('-')[1].upper()}"
    reg = TaskRegistry()
    calls: list[Any] = []

    @reg.task("call_api")
    async def call_api(data):
        calls.append(data)

    engine = await make_engine(reg)
    retry = {"max_attempts": 3, "initial_interval": 0.01}
    wf = await deploy(
        engine,
        "missing-secret",
        fn("call", "call_api", input="${ secrets." + name + " }", retry=retry),
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert name in result.error.message
    assert result.error.attempt == 1
    assert calls == []
