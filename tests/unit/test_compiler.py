"""The graph compiler and its validation (DESIGN §2 "Validation", §3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from spane.compiler.compile import checksum, compile_plan
from spane.compiler.plan import MAX_PATHS, Edge, JoinMode, NodeKind, RetrySettings
from spane.compiler.validation import validate
from spane.errors import InvalidWorkflowError, Problem
from spane.schemas.loader import load_workflow_text
from spane.schemas.workflow import WorkflowSpec
from tests.unit.strategies import random_dags


def fn(node_id: str, *after: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "function", "function": "t.fn", "after": list(after), **fields}


def node(node_id: str, node_type: str, *after: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "after": list(after), **fields}


def switch(node_id: str, *after: str, cases: tuple[str, ...] = ("big", "small")) -> dict[str, Any]:
    return node(
        node_id, "switch", *after, cases=[{"name": c, "when": "input.total > 1"} for c in cases]
    )


def body(*nodes: dict[str, Any], output: Any = None) -> dict[str, Any]:
    return {"nodes": list(nodes), "output": output}


def spec(*nodes: dict[str, Any], **extra: Any) -> WorkflowSpec:
    return WorkflowSpec.model_validate({"id": "t", "nodes": list(nodes), **extra})


def found(workflow: WorkflowSpec) -> list[Problem]:
    return validate(workflow)


DESIGN_EXAMPLE = """
id: order-fulfilment
timeout: 10m
max_concurrency: 20
max_executions: 100
vars: {attempts: 0}
input_schema: {type: object}
defaults:
  timeout: 30s
  retry: {max_attempts: 3, initial_interval: 1s, backoff: 2.0, max_interval: 1m, jitter: true}
triggers:
  - cron: "*/5 * * * *"
  - event: order.created
    filter: "event.data.total > 0"
nodes:
  - id: validate
    type: function
    function: shop.validate
  - id: charge
    type: http
    after: [validate]
    when: "nodes.validate.output.valid"
    request:
      method: POST
      url: "https://payments.example/charges"
      json: {amount: "${ input.total }", currency: EUR}
      headers: {Authorization: "Bearer ${ secrets.PAYMENTS_TOKEN }"}
    retry: {max_attempts: 5}
  - id: route
    type: switch
    after: [charge]
    cases:
      - {name: big,   when: "input.total >= 1000"}
      - {name: small, when: "input.total < 1000"}
  - id: review
    type: wait_for_signal
    after: [route.big]
    signal: approval
    timeout: 24h
  - id: ship
    type: image-resize
    after: [review, route.small]
    join: all
    priority: 5
  - id: refund
    type: function
    function: shop.refund
    after: [charge.error]
  - id: notify
    type: function
    function: shop.notify
    after: [ship.always]
output: "${ nodes.ship.output }"
"""


# ----------------------------------------------------------------------------- problems

PROBLEMS = [
    pytest.param(
        spec(fn("a"), fn("a")),
        "nodes[1].id",
        "duplicate node id 'a'",
        "first at nodes[0]",
        id="duplicate-id",
    ),
    pytest.param(
        spec(fn("charge"), fn("x", "chrage")),
        "nodes[1].after[0]",
        "unknown node 'chrage'",
        "did you mean 'charge'?",
        id="unknown-after-node",
    ),
    pytest.param(
        spec(fn("charge"), fn("x", "charge.erorr")),
        "nodes[1].after[0]",
        "unknown port 'erorr' of node 'charge'",
        "did you mean 'charge.error'? ports of 'charge': success, error, always",
        id="unknown-port",
    ),
    pytest.param(
        spec(switch("route"), fn("x", "route.medium")),
        "nodes[1].after[0]",
        "unknown port 'medium'",
        "ports of 'route': success, error, always, default, big, small",
        id="unknown-switch-case",
    ),
    pytest.param(
        spec(fn("a"), fn("x", "a.default")),
        "nodes[1].after[0]",
        "unknown port 'default'",
        "ports of 'a'",
        id="switch-port-on-function",
    ),
    pytest.param(
        spec(fn("a"), fn("b", "a", "b")),
        "nodes[1].after[1]",
        "node 'b' cannot run after itself",
        None,
        id="self-reference",
    ),
    pytest.param(
        spec(fn("a"), fn("b", "a", "a.success")),
        "nodes[1].after[1]",
        "upstream port 'a.success' is listed twice",
        "also at after[0]",
        id="same-port-twice",
    ),
    pytest.param(
        spec(fn("a", "c"), fn("b", "a"), fn("c", "b"), fn("d", "c")),
        "nodes[0].after[0]",
        "cycle: a -> b -> c -> a",
        "loop node",
        id="cycle",
    ),
    pytest.param(
        spec(fn("s"), fn("a", "s", "b"), fn("b", "a")),
        "nodes[1].after[1]",
        "cycle: a -> b -> a",
        None,
        id="two-node-cycle",
    ),
    pytest.param(
        spec(node("f", "fail"), fn("x", "f")),
        "nodes[1].after",
        "node 'x' can never run: 'f' is a fail node",
        "use 'f.error'",
        id="after-fail-success",
    ),
    pytest.param(
        spec(node("f", "fail"), fn("x", "f"), fn("y", "x")),
        "nodes[2].after",
        "node 'y' can never run: every upstream node ('x')",
        None,
        id="unreachable-transitively",
    ),
    pytest.param(
        spec(fn("a"), node("f", "fail", "a"), fn("b", "a", "f", join={"at_least": 2})),
        "nodes[2].after",
        "only 1 of its upstream edges can fire",
        None,
        id="at-least-unreachable",
    ),
    pytest.param(
        spec(fn("a"), fn("b"), fn("c", "a", "b", join={"at_least": 3})),
        "nodes[2].join",
        "at_least 3 fired edges but the node has only 2 upstream edges",
        "between 1 and 2",
        id="at-least-too-high",
    ),
    pytest.param(
        spec(fn("a", join={"at_least": 1})),
        "nodes[0].join",
        "only 0 upstream edges",
        "remove the join",
        id="at-least-on-root",
    ),
    pytest.param(
        spec(switch("s", cases=("big", "big"))),
        "nodes[0].cases[1].name",
        "duplicate case name 'big'",
        None,
        id="duplicate-case",
    ),
    pytest.param(
        spec(switch("s", cases=("big", "error"))),
        "nodes[0].cases[1].name",
        "case name 'error' is reserved",
        "always, default, error",
        id="reserved-case",
    ),
    pytest.param(
        spec(node("b", "break")),
        "nodes[0].type",
        "'break' is only valid inside a loop body",
        None,
        id="break-outside-body",
    ),
    pytest.param(
        spec(node("c", "continue")),
        "nodes[0].type",
        "'continue' is only valid inside a loop",
        None,
        id="continue-outside-body",
    ),
]

SYNTAX = [
    pytest.param(spec(fn("a", when="input.x >")), "nodes[0].when", id="when"),
    pytest.param(
        spec(fn("a"), triggers=[{"event": "e", "filter": "event.data.x =="}]),
        "triggers[0].filter",
        id="filter",
    ),
    pytest.param(
        spec(node("s", "switch", cases=[{"name": "x", "when": "(input"}])),
        "nodes[0].cases[0].when",
        id="case",
    ),
    pytest.param(
        spec(node("w", "while", condition="input.x <", body=body(node("n", "noop")))),
        "nodes[0].condition",
        id="condition",
    ),
    pytest.param(spec(fn("a", input={"x": "${ input. }"})), "nodes[0].input.x", id="input"),
    pytest.param(
        spec(node("h", "http", request={"url": "u", "json": {"amount": "${ 1 + }"}})),
        "nodes[0].request.json.amount",
        id="request",
    ),
    pytest.param(
        spec(node("h", "http", request={"url": "u", "headers": {"A": "${ ) }"}})),
        "nodes[0].request.headers.A",
        id="request-header",
    ),
    pytest.param(
        spec(node("c", "image-resize", config={"size": ["${ input.", 2]})),
        "nodes[0].config.size[0]",
        id="config",
    ),
    pytest.param(spec(node("t", "transform", output="${ [ }")), "nodes[0].output", id="output"),
    pytest.param(
        spec(node("s", "set", vars={"total": "${ * }"})),
        "nodes[0].vars.total",
        id="vars",
    ),
    pytest.param(spec(node("f", "fail", error="${ ( }")), "nodes[0].error", id="error"),
    pytest.param(
        spec(node("l", "for_each", items="${ input.[ }", body=body(node("n", "noop")))),
        "nodes[0].items",
        id="items",
    ),
    pytest.param(spec(node("d", "delay", until="${ + }")), "nodes[0].until", id="until"),
    pytest.param(
        spec(node("r", "repeat", times="${ 3 + }", body=body(node("n", "noop")))),
        "nodes[0].times",
        id="times",
    ),
    pytest.param(spec(fn("a"), output={"x": "${ nodes. }"}), "output.x", id="workflow-output"),
    pytest.param(
        spec(fn("a"), triggers=[{"event": "e", "input": {"id": "${ event. }"}}]),
        "triggers[0].input.id",
        id="trigger-input",
    ),
    pytest.param(spec(fn("a", input="${ input.x ")), "nodes[0].input", id="unclosed"),
]

REFERENCES = [
    pytest.param(
        spec(fn("a", when="inptu.x > 0")),
        "nodes[0].when",
        "unknown name 'inptu'",
        "did you mean 'input'?",
        id="unknown-root",
    ),
    pytest.param(
        spec(fn("charge"), fn("b", "charge", input="${ nodes.chrage.output }")),
        "nodes[1].input",
        "unknown node 'chrage' in 'nodes.chrage'",
        "did you mean 'charge'?",
        id="unknown-node-ref",
    ),
    pytest.param(
        spec(fn("a", input={"x": "${ item }"})),
        "nodes[0].input.x",
        "'item' is only available inside a loop body",
        None,
        id="item-outside-body",
    ),
    pytest.param(
        spec(fn("a", when="index > 0")),
        "nodes[0].when",
        "'index' is only available inside a loop body",
        None,
        id="index-outside-body",
    ),
    pytest.param(
        spec(node("t", "transform", output="${ iteration }")),
        "nodes[0].output",
        "'iteration' is only available inside a loop body",
        None,
        id="iteration-outside-body",
    ),
    pytest.param(
        spec(fn("a", when="event.data.ok")),
        "nodes[0].when",
        "'event' is only available in a trigger's filter and input",
        None,
        id="event-outside-trigger",
    ),
    pytest.param(
        spec(fn("a"), triggers=[{"event": "e", "filter": "input.x > 0"}]),
        "triggers[0].filter",
        "'input' is not available in a trigger's filter",
        "use 'event'",
        id="input-in-filter",
    ),
    pytest.param(
        spec(fn("a", when="vars.totl > 1"), vars={"total": 1}),
        "nodes[0].when",
        "variable 'totl' is never defined",
        "did you mean 'total'?",
        id="undefined-var",
    ),
    pytest.param(
        spec(fn("a", input="${ vars.count }")),
        "nodes[0].input",
        "variable 'count' is never defined",
        "define it in the workflow's",
        id="undefined-var-no-hint",
    ),
    pytest.param(
        spec(fn("a", input="${ secrets.TOKEN + input.x }")),
        "nodes[0].input",
        "'secrets' must be used alone",
        "'${ secrets.TOKEN }'",
        id="secrets-with-other-root",
    ),
    pytest.param(
        spec(fn("a", when="secrets.ON == 'yes'")),
        "nodes[0].when",
        "'secrets' cannot be used in a 'when' guard",
        "resolved on the worker",
        id="secrets-in-when",
    ),
    pytest.param(
        spec(node("s", "switch", cases=[{"name": "x", "when": "secrets.A == '1'"}])),
        "nodes[0].cases[0].when",
        "'secrets' cannot be used in a switch case",
        None,
        id="secrets-in-case",
    ),
    pytest.param(
        spec(node("t", "transform", output="${ secrets.A }")),
        "nodes[0].output",
        "'secrets' cannot be used in a transform node's 'output'",
        None,
        id="secrets-in-control-node",
    ),
    pytest.param(
        spec(fn("a"), output="${ secrets.A }"),
        "output",
        "'secrets' cannot be used in the workflow output",
        None,
        id="secrets-in-output",
    ),
    pytest.param(
        spec(fn("a"), output="${ item }"),
        "output",
        "'item' is only available inside a loop body",
        None,
        id="item-in-output",
    ),
    pytest.param(
        spec(
            fn("a"),
            node(
                "l",
                "for_each",
                items="${ input.xs }",
                body=body(fn("b", input="${ nodes.a.output }")),
            ),
        ),
        "nodes[1].body.nodes[0].input",
        "unknown node 'a'",
        "a loop body can only refer to its own nodes",
        id="body-refers-to-outer-node",
    ),
    pytest.param(
        spec(node("l", "for_each", items="${ input.xs }", body=body(fn("b"), fn("c", "bb")))),
        "nodes[0].body.nodes[1].after[0]",
        "unknown node 'bb'",
        "did you mean 'b'?",
        id="body-after",
    ),
    pytest.param(
        spec(node("l", "for_each", items="${ input.xs }", body=body(fn("b"), output="${ x }"))),
        "nodes[0].body.output",
        "unknown name 'x'",
        None,
        id="body-output",
    ),
]


@pytest.mark.parametrize(("workflow", "location", "message", "hint"), PROBLEMS + REFERENCES)
def test_problem_is_reported_with_location_and_hint(workflow, location, message, hint):
    problems = found(workflow)
    matching = [p for p in problems if p.location == location and message in p.message]
    assert matching, f"no {location}: {message} in {[str(p) for p in problems]}"
    if hint is not None:
        assert hint in (matching[0].hint or "")


@pytest.mark.parametrize(("workflow", "location"), SYNTAX)
def test_syntax_error_is_located_in_the_field(workflow, location):
    problems = found(workflow)
    assert [p.location for p in problems] == [location], [str(p) for p in problems]
    assert problems[0].message.startswith("syntax error")


VALID = [
    pytest.param(load_workflow_text(DESIGN_EXAMPLE), id="design-example"),
    pytest.param(
        spec(node("s", "set", vars={"n": 1}), fn("a", "s", when="vars.n > 0")),
        id="var-from-set-node",
    ),
    pytest.param(
        spec(
            node("l", "repeat", times=3, body=body(node("s", "set", vars={"deep": 1}))),
            fn("a", "l", when="vars.deep > 0"),
        ),
        id="var-from-set-node-in-body",
    ),
    pytest.param(
        spec(node("w", "while", condition="iteration < 3", body=body(node("n", "noop")))),
        id="iteration-in-while-condition",
    ),
    pytest.param(
        spec(
            node(
                "l",
                "for_each",
                items="${ input.xs }",
                body=body(
                    fn(
                        "b",
                        input={"x": "${ item }", "i": "${ index }", "n": "${ iteration }"},
                        when="index >= 0",
                    ),
                    node("stop", "break", "b", when="item == 3"),
                    node("skip", "continue", "b.error"),
                    output="${ nodes.b.output }",
                ),
            )
        ),
        id="loop-roots-and-break-in-body",
    ),
    pytest.param(
        spec(
            node(
                "h",
                "http",
                request={
                    "url": "https://x/${ input.id }",
                    "headers": {"Authorization": "Bearer ${ secrets.TOKEN } for ${ input.user }"},
                },
            )
        ),
        id="secrets-alone-in-task-request",
    ),
    pytest.param(
        spec(
            fn("a"),
            triggers=[
                {"event": "e", "filter": "event.data.ok", "input": {"id": "${ event.data.id }"}}
            ],
        ),
        id="event-in-trigger",
    ),
    pytest.param(
        spec(fn("a", input="${ [1, 2].map(x, x * 2) }", when="input.xs.all(v, v > 0)")),
        id="macro-variables-are-not-roots",
    ),
    pytest.param(
        spec(node("f", "fail"), fn("x", "f.error"), fn("y", "f.always"), fn("z", "x", "y")),
        id="fail-error-and-always-ports",
    ),
    pytest.param(
        spec(node("f", "fail"), fn("a"), fn("x", "f", "a", join="any")),
        id="one-live-edge-is-enough",
    ),
    pytest.param(
        spec(fn("a"), fn("b", "a", join="any"), fn("c", "a", "b", join={"at_least": 2})),
        id="any-on-single-edge-is-fine",
    ),
]


@pytest.mark.parametrize("workflow", VALID)
def test_valid_definitions_have_no_problems(workflow):
    assert found(workflow) == []
    compile_plan(workflow)


def test_every_mistake_is_reported_at_once():
    workflow = spec(
        fn("charge"),
        fn("charge"),
        fn("refund", "chrage.error"),
        fn("notify", "charge.erorr", when="inptu.ok"),
        fn("ship", "charge", "charge", join={"at_least": 3}, input="${ nodes.shipp.output }"),
        node("stop", "break", "charge"),
        output="${ vars.missing }",
        triggers=[{"event": "e", "filter": "event.data.total >"}],
    )
    with pytest.raises(InvalidWorkflowError) as caught:
        compile_plan(workflow)
    error = caught.value
    assert error.workflow_id == "t"
    got = {(p.location, p.message, p.hint) for p in error.problems}
    expected_parts = [
        ("nodes[1].id", "duplicate node id 'charge'", "first at nodes[0]"),
        ("nodes[2].after[0]", "unknown node 'chrage'", "did you mean 'charge'?"),
        ("nodes[3].after[0]", "unknown port 'erorr'", "did you mean 'charge.error'?"),
        ("nodes[3].when", "unknown name 'inptu'", "did you mean 'input'?"),
        ("nodes[4].after[1]", "listed twice", "also at after[0]"),
        ("nodes[4].join", "at_least 3", "between 1 and 2"),
        ("nodes[4].input", "unknown node 'shipp'", "did you mean 'ship'?"),
        ("nodes[5].type", "only valid inside a loop body", None),
        ("output", "variable 'missing' is never defined", None),
        ("triggers[0].filter", "syntax error", None),
    ]
    for location, message, hint in expected_parts:
        assert any(
            loc == location and message in msg and (hint is None or hint in (h or ""))
            for loc, msg, h in got
        ), (location, message, sorted(map(str, error.problems)))
    assert len(error.problems) == len(expected_parts)
    assert "10 problem(s)" in str(error)


# ----------------------------------------------------------------------------- plans


def test_design_example_plan_structure():
    plan = compile_plan(load_workflow_text(DESIGN_EXAMPLE), version=3)
    assert (plan.workflow_id, plan.version) == ("order-fulfilment", 3)
    assert plan.order == ("validate", "charge", "route", "review", "ship", "refund", "notify")
    assert plan.roots == ("validate",)
    assert plan.leaves == ("refund", "notify")
    assert plan.branch_points == ("charge", "route")
    assert plan.convergence_points == ("ship",)
    assert plan.groups == (
        ("validate",),
        ("charge",),
        ("route", "refund"),
        ("review",),
        ("ship",),
        ("notify",),
    )
    assert plan.paths == (
        ("validate", "charge", "route", "review", "ship", "notify"),
        ("validate", "charge", "route", "ship", "notify"),
        ("validate", "charge", "refund"),
    )
    assert not plan.paths_capped
    assert plan.output is not None
    assert plan.output_refs == frozenset({"ship"})
    assert (plan.timeout, plan.max_concurrency, plan.max_executions) == (600.0, 20, 100)
    assert plan.initial_vars == {"attempts": 0}
    assert plan.input_schema == {"type": "object"}

    charge = plan.node("charge")
    assert charge.kind is NodeKind.TASK
    assert charge.parents == (Edge("validate", "success", "charge"),)
    assert charge.children == (
        Edge("charge", "success", "route"),
        Edge("charge", "error", "refund"),
    )
    assert charge.handles_error
    assert charge.guard is not None
    assert charge.guard.source == "nodes.validate.output.valid"
    assert charge.node_refs == frozenset({"validate"})
    assert set(charge.templates) == {"request", "expect"}
    assert charge.input is None
    assert charge.timeout == 30.0
    assert charge.retry.max_attempts == 5

    route = plan.node("route")
    assert route.kind is NodeKind.CONTROL
    assert [case.name for case in route.cases] == ["big", "small"]
    assert route.ports == {"success", "error", "always", "default", "big", "small"}
    assert [e.key for e in route.children] == ["route.big", "route.small"]
    assert route.retry == RetrySettings()
    assert route.timeout is None

    ship = plan.node("ship")
    assert [e.key for e in ship.parents] == ["review.success", "route.small"]
    assert (ship.join, ship.threshold, ship.priority, ship.level) == (JoinMode.ALL, 1, 5, 4)
    assert set(ship.templates) == {"config"}
    assert plan.node("review").timeout == 86400.0
    assert plan.node("notify").parents == (Edge("ship", "always", "notify"),)
    assert plan.node("validate").priority == 0


def test_request_template_uses_aliases_and_renders():
    plan = compile_plan(load_workflow_text(DESIGN_EXAMPLE))
    request = (
        plan.node("charge")
        .templates["request"]
        .render({"input": {"total": 12}}, defer=frozenset({"secrets"}))
    )
    assert request["json"] == {"amount": 12, "currency": "EUR"}
    assert request["headers"]["Authorization"] == "Bearer ${ secrets.PAYMENTS_TOKEN }"
    assert "body" not in request
    assert "timeout" not in request


DIAMOND = spec(
    fn("a"),
    fn("b", "a"),
    fn("c", "a"),
    fn("d", "a"),
    fn("e", "b", "c"),
    fn("f", "d"),
    fn("g", "e", "f"),
    fn("h", "g"),
    fn("i", "g"),
    fn("j", "h", "i"),
)


def test_diamond_dag_structure():
    plan = compile_plan(DIAMOND)
    assert plan.order == tuple("abcdefghij")
    assert plan.roots == ("a",)
    assert plan.leaves == ("j",)
    assert plan.groups == (("a",), ("b", "c", "d"), ("e", "f"), ("g",), ("h", "i"), ("j",))
    assert plan.convergence_points == ("e", "g", "j")
    assert plan.branch_points == ()
    assert len(plan.paths) == 6
    assert not plan.paths_capped
    assert {p[-1] for p in plan.paths} == {"j"}
    assert plan.node("g").level == 3


@pytest.mark.parametrize(
    ("joins", "expected"),
    [
        ("all", (JoinMode.ALL, 1)),
        ("any", (JoinMode.ANY, 1)),
        ({"at_least": 2}, (JoinMode.AT_LEAST, 2)),
        ({"at_least": 3}, (JoinMode.AT_LEAST, 3)),
    ],
)
def test_join_mode_and_threshold(joins, expected):
    plan = compile_plan(spec(fn("a"), fn("b"), fn("c"), fn("j", "a", "b", "c", join=joins)))
    join = plan.node("j")
    assert (join.join, join.threshold) == expected


def layered(width: int, depth: int) -> WorkflowSpec:
    nodes = []
    for layer in range(depth):
        for column in range(width):
            upstream = [f"l{layer - 1}_{k}" for k in range(width)] if layer else []
            nodes.append(fn(f"l{layer}_{column}", *upstream))
    return spec(*nodes)


@pytest.mark.parametrize(
    ("width", "depth", "count", "capped"),
    [(10, 2, 100, False), (5, 4, MAX_PATHS, True), (2, 3, 8, False), (30, 2, MAX_PATHS, True)],
)
def test_paths_are_capped(width, depth, count, capped):
    plan = compile_plan(layered(width, depth))
    assert len(plan.paths) == count
    assert plan.paths_capped is capped
    assert len(set(plan.paths)) == len(plan.paths)
    assert all(len(path) == depth for path in plan.paths)
    assert len(plan.groups) == depth


def test_long_chain_compiles_without_recursion():
    nodes = [fn("n0")] + [fn(f"n{i}", f"n{i - 1}") for i in range(1, 1500)]
    plan = compile_plan(spec(*nodes))
    assert plan.order[-1] == "n1499"
    assert plan.node("n1499").level == 1499
    assert len(plan.paths) == 1


def test_definition_order_breaks_ties_in_topological_order():
    plan = compile_plan(spec(fn("z"), fn("y", "x"), fn("x"), fn("w", "z")))
    assert plan.order == ("z", "x", "y", "w")
    assert plan.roots == ("z", "x")


def test_same_source_two_ports_is_one_path():
    plan = compile_plan(spec(fn("a"), fn("b", "a", "a.error")))
    assert plan.paths == (("a", "b"),)
    assert plan.node("a").children == (Edge("a", "success", "b"), Edge("a", "error", "b"))
    assert plan.convergence_points == ("b",)
    assert plan.branch_points == ("a",)


# ----------------------------------------------------------------------------- checksum


def test_checksum_is_stable_and_content_sensitive():
    first = load_workflow_text(DESIGN_EXAMPLE)
    again = load_workflow_text(DESIGN_EXAMPLE)
    assert checksum(first) == checksum(again) == compile_plan(first).checksum
    assert len(checksum(first)) == 64
    changed = load_workflow_text(DESIGN_EXAMPLE.replace("timeout: 24h", "timeout: 12h"))
    assert checksum(changed) != checksum(first)


def test_checksum_ignores_key_order_and_duration_spelling():
    one = spec(fn("a", input={"x": 1, "y": 2}, timeout="1m"))
    two = spec(fn("a", timeout=60, input={"y": 2, "x": 1}))
    assert checksum(one) == checksum(two)


# ----------------------------------------------------------------------------- policies

BUILTIN = RetrySettings()


@pytest.mark.parametrize(
    ("node_retry", "defaults", "expected"),
    [
        (None, None, BUILTIN),
        ({"max_attempts": 5}, None, RetrySettings(max_attempts=5)),
        (None, {"max_attempts": 3, "backoff": 3.0}, RetrySettings(max_attempts=3, backoff=3.0)),
        (
            {"max_attempts": 5},
            {"max_attempts": 3, "initial_interval": "2s", "jitter": False},
            RetrySettings(max_attempts=5, initial_interval=2.0, jitter=False),
        ),
        (
            {"non_retryable": ["ValueError"]},
            {"non_retryable": ["KeyError"], "max_interval": "5m"},
            RetrySettings(non_retryable=frozenset({"ValueError"}), max_interval=300.0),
        ),
        ({"jitter": True}, {"jitter": False}, RetrySettings(jitter=True)),
    ],
)
def test_retry_is_merged_field_by_field(node_retry, defaults, expected):
    extra = {"defaults": {"retry": defaults}} if defaults else {}
    retry = {"retry": node_retry} if node_retry else {}
    plan = compile_plan(spec(fn("a", **retry), **extra))
    assert plan.node("a").retry == expected


@pytest.mark.parametrize(
    ("workflow_node", "expected_attempts"),
    [
        (node("s", "sub_workflow", workflow="child"), 4),
        (node("s", "sub_workflow", workflow="child", retry={"max_attempts": 2}), 2),
        (node("n", "noop"), 1),
        (node("w", "wait_for_signal", signal="go"), 1),
        (node("c", "image-resize"), 4),
        (node("h", "http", request={"url": "u"}), 4),
    ],
)
def test_control_nodes_do_not_retry_except_sub_workflow(workflow_node, expected_attempts):
    plan = compile_plan(spec(workflow_node, defaults={"retry": {"max_attempts": 4}}))
    assert plan.node(workflow_node["id"]).retry.max_attempts == expected_attempts


@pytest.mark.parametrize(
    ("workflow_node", "expected"),
    [
        (fn("a"), 30.0),
        (fn("a", timeout="5s"), 5.0),
        (node("c", "image-resize"), 30.0),
        (node("s", "sub_workflow", workflow="child"), 30.0),
        (node("s", "sub_workflow", workflow="child", timeout="1h"), 3600.0),
        (node("w", "wait_for_signal", signal="go"), None),
        (node("w", "wait_for_signal", signal="go", timeout="2m"), 120.0),
        (node("d", "delay", duration="1h"), None),
        (node("n", "noop"), None),
    ],
)
def test_effective_timeout(workflow_node, expected):
    plan = compile_plan(spec(workflow_node, defaults={"timeout": "30s"}))
    assert plan.node(workflow_node["id"]).timeout == expected


@pytest.mark.parametrize(
    ("workflow_node", "templates", "kind"),
    [
        (fn("a"), set(), NodeKind.TASK),
        (node("h", "http", request={"url": "u"}), {"request", "expect"}, NodeKind.TASK),
        (node("c", "image-resize", config={"w": 1}), {"config"}, NodeKind.TASK),
        (node("t", "transform", output=1), {"output"}, NodeKind.CONTROL),
        (node("s", "set", vars={"v": 1}), {"vars"}, NodeKind.CONTROL),
        (node("f", "fail"), {"error"}, NodeKind.CONTROL),
        (node("d", "delay", until="${ input.at }"), {"until"}, NodeKind.CONTROL),
        (node("d", "delay", duration=1), set(), NodeKind.CONTROL),
        (
            node("r", "repeat", times="${ input.n }", body=body(node("n", "noop"))),
            {"times"},
            NodeKind.CONTROL,
        ),
        (node("r", "repeat", times=2, body=body(node("n", "noop"))), set(), NodeKind.CONTROL),
        (
            node("l", "for_each", items=[1], body=body(node("n", "noop"))),
            {"items"},
            NodeKind.CONTROL,
        ),
        (node("s", "sub_workflow", workflow="child", input={"a": 1}), set(), NodeKind.CONTROL),
    ],
)
def test_templates_per_node_type(workflow_node, templates, kind):
    compiled = compile_plan(spec(workflow_node)).node(workflow_node["id"])
    assert set(compiled.templates) == templates
    assert compiled.kind is kind
    assert (compiled.input is not None) == ("input" in workflow_node)


def test_node_refs_union_every_expression():
    plan = compile_plan(
        spec(
            fn("a"),
            fn("b"),
            fn("c"),
            fn("d"),
            node(
                "s",
                "switch",
                "a",
                "b",
                "c",
                "d",
                when="nodes.a.output.ok",
                input="${ nodes.b.output }",
                cases=[{"name": "x", "when": "nodes.c.status == 'succeeded'"}],
            ),
            node("t", "transform", "s", output={"v": "${ nodes['d'].output }"}),
        )
    )
    assert plan.node("s").node_refs == frozenset({"a", "b", "c"})
    assert plan.node("t").node_refs == frozenset({"d"})


# ----------------------------------------------------------------------------- loops


def test_loop_body_is_compiled_into_its_own_plan():
    workflow = spec(
        fn("fetch"),
        node(
            "each",
            "for_each",
            "fetch",
            items="${ nodes.fetch.output }",
            concurrency=3,
            body=body(
                fn("double", input={"value": "${ item }", "at": "${ index }"}, retry={}),
                node(
                    "check",
                    "switch",
                    "double",
                    cases=[{"name": "big", "when": "nodes.double.output > 10"}],
                ),
                node("stop", "break", "check.big"),
                output="${ nodes.double.output }",
            ),
        ),
        defaults={"timeout": "7s", "retry": {"max_attempts": 2}},
    )
    plan = compile_plan(workflow, version=4)
    loop = plan.node("each")
    assert loop.node_refs == frozenset({"fetch"})
    assert set(loop.templates) == {"items"}
    inner = loop.body
    assert inner is not None
    assert (inner.workflow_id, inner.version) == ("t.each", 4)
    assert inner.order == ("double", "check", "stop")
    assert inner.roots == ("double",)
    assert inner.leaves == ("stop",)
    assert inner.branch_points == ("check",)
    assert inner.output_refs == frozenset({"double"})
    assert inner.node("double").timeout == 7.0
    assert inner.node("double").retry.max_attempts == 2
    assert inner.node("check").node_refs == frozenset({"double"})
    given = inner.node("double").input
    assert given is not None
    assert given.render({"item": 5, "index": 0}) == {"value": 5, "at": 0}
    assert len(inner.checksum) == 64
    assert plan.node("fetch").body is None


def test_nested_loop_bodies():
    inner_loop = node("inner", "repeat", times=2, body=body(fn("leaf", input="${ iteration }")))
    plan = compile_plan(spec(node("outer", "for_each", items=[1, 2], body=body(inner_loop))))
    outer = plan.node("outer").body
    assert outer is not None
    nested = outer.node("inner").body
    assert nested is not None
    assert nested.workflow_id == "t.outer.inner"
    assert nested.roots == ("leaf",)


def test_body_problems_use_the_nested_location():
    workflow = spec(
        node(
            "l",
            "while",
            condition="vars.go",
            body=body(
                fn("a"),
                fn("b", "a.oops"),
                node("stop", "break", "b", when="nodes.zz.output"),
            ),
        ),
        vars={"go": True},
    )
    problems = {(p.location, p.message) for p in found(workflow)}
    assert ("nodes[0].body.nodes[1].after[0]", "unknown port 'oops' of node 'a'") in problems
    assert any(loc == "nodes[0].body.nodes[2].when" for loc, _ in problems)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(random_dags())
def test_random_dags_compile_in_topological_order(workflow):
    plan = compile_plan(workflow)
    position = {node_id: index for index, node_id in enumerate(plan.order)}
    assert sorted(plan.order) == sorted(n.id for n in workflow.nodes)
    for compiled in plan.nodes.values():
        for edge in compiled.parents:
            assert position[edge.source] < position[edge.target]
            assert compiled.level > plan.node(edge.source).level
            assert edge in plan.node(edge.source).children
        assert 1 <= compiled.threshold <= max(len(compiled.parents), 1)
    assert set(plan.roots) == {n for n, c in plan.nodes.items() if not c.parents}
    assert set(plan.leaves) == {n for n, c in plan.nodes.items() if not c.children}
    assert sorted(n for group in plan.groups for n in group) == sorted(plan.nodes)
    assert plan.paths
    assert len(plan.paths) <= MAX_PATHS
    for path in plan.paths:
        assert path[0] in plan.roots
        assert path[-1] in plan.leaves


@settings(max_examples=50, deadline=None)
@given(random_dags())
def test_random_dags_checksum_is_deterministic(workflow):
    copy = WorkflowSpec.model_validate(workflow.model_dump(mode="json", by_alias=True))
    assert checksum(copy) == checksum(workflow)
