"""Plans in words and as Mermaid flowcharts."""

from __future__ import annotations

import pytest

from spane.compiler.compile import compile_plan
from spane.compiler.describe import describe_plan, to_mermaid
from spane.compiler.plan import MAX_PATHS
from spane.schemas.workflow import WorkflowSpec


def fn(node_id, *after, **fields):
    return {"id": node_id, "type": "function", "function": "t.fn", "after": list(after), **fields}


def plan_of(*nodes, **extra):
    return compile_plan(WorkflowSpec.model_validate({"id": "demo", "nodes": list(nodes), **extra}))


EXAMPLE = plan_of(
    fn("validate"),
    fn("charge", "validate", when="nodes.validate.output.valid", retry={"max_attempts": 5}),
    {
        "id": "route",
        "type": "switch",
        "after": ["charge"],
        "cases": [{"name": "big", "when": "input.total >= 1000"}],
    },
    {"id": "review", "type": "wait_for_signal", "after": ["route.big"], "signal": "go"},
    fn("ship", "review", "route.default", join={"at_least": 1}),
    fn("refund", "charge.error"),
    fn("notify", "ship.always", "refund", join="any"),
    defaults={"timeout": "30s"},
)


@pytest.mark.parametrize(
    "line",
    [
        "Workflow 'demo' version 1 (7 nodes, checksum ",
        "Roots: validate",
        "  - validate [function, task]; root; timeout 30s",
        "  - charge [function, task]; after validate; when nodes.validate.output.valid; "
        "timeout 30s; up to 5 attempts",
        "  - route [switch, control]; after charge; cases big, default",
        "  - review [wait_for_signal, control]; after route.big",
        "  - ship [function, task]; after review, route.default; join at least 1 of 2; timeout 30s",
        "  - notify [function, task]; after ship.always, refund; "
        "join any: runs on the first fired edge; timeout 30s",
        "Branch points: charge, route",
        "Convergence points: ship, notify",
        "Parallel groups:",
        "  2: route, refund",
        "Leaves: notify",
        "Paths: 3",
    ],
)
def test_describe_plan_mentions(line):
    text = describe_plan(EXAMPLE)
    assert any(candidate.startswith(line) for candidate in text.splitlines()), text


def test_describe_plan_lists_nodes_in_topological_order():
    lines = describe_plan(EXAMPLE).splitlines()
    nodes = [line.split()[1] for line in lines if line.startswith("  - ")]
    assert nodes == list(EXAMPLE.order)


def test_describe_plan_all_join_and_body():
    plan = plan_of(
        fn("a"),
        fn("b"),
        fn("c", "a", "b"),
        {
            "id": "loop",
            "type": "for_each",
            "after": ["c"],
            "items": "${ input.xs }",
            "body": {"nodes": [fn("x"), fn("y", "x")]},
        },
    )
    text = describe_plan(plan)
    assert (
        "c [function, task]; after a, b; join all: waits for every edge, runs if one fired" in text
    )
    assert "loop [for_each, control]; after c; body 'demo.loop' (2 nodes)" in text
    assert "Branch points: none" in text


def test_describe_plan_says_when_paths_are_capped():
    width = 12
    nodes = [fn(f"a{i}") for i in range(width)]
    nodes += [fn(f"b{i}", *(f"a{k}" for k in range(width))) for i in range(width)]
    text = describe_plan(plan_of(*nodes))
    assert f"Paths: {MAX_PATHS} (capped at {MAX_PATHS}, there are more)" in text


def test_mermaid_flowchart():
    chart = to_mermaid(EXAMPLE)
    lines = chart.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    n0["validate<br/>function"]' in lines
    assert '    n2["route<br/>switch"]' in lines
    assert "    n0 --> n1" in lines  # success: plain, unlabelled
    assert "    n2 -->|big| n3" in lines  # case port: labelled
    assert "    n2 -->|default| n4" in lines
    assert "    n1 -.->|error| n5" in lines  # error: dashed
    assert "    n4 -.->|always| n6" in lines  # always: dashed
    assert "    n5 --> n6" in lines
    boxes = [line for line in lines if "[" in line]
    edges = [line for line in lines if "->" in line]
    assert len(boxes) == len(EXAMPLE.nodes)
    assert len(edges) == sum(len(node.parents) for node in EXAMPLE.nodes.values())


def test_mermaid_ids_are_safe_for_any_node_id():
    plan = plan_of(fn("end"), fn("graph-1", "end"))
    chart = to_mermaid(plan)
    assert '    n0["end<br/>function"]' in chart
    assert "    n0 --> n1" in chart
