"""A newcomer's mistakes get located problems with hints, all in one pass.

- ``type: swtich``: a near miss of a built-in node type is a problem at ``nodes[i].type``
  ("did you mean 'switch'?"), not a silent custom pool; naming ``pool:`` keeps it.
- ``functon:``: an unknown field gets the closest field name of its model.
- A definition whose nodes fail their models still gets the graph checks (ids, ``after``
  references and ports, cycles), worded like the compiler's; every problem is listed
  once, ordered by location.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from spane.cli.main import EXIT_FAILED, app
from spane.compiler.compile import compile_plan
from spane.compiler.validation import validate
from spane.errors import InvalidWorkflowError, Problem
from spane.schemas.loader import spec_from_data
from spane.schemas.suggestions import near_builtin_type, ordered_problems
from spane.schemas.workflow import CONTROL_TYPES, TASK_TYPES_BUILTIN, WorkflowSpec


def fn(node_id: str, *after: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "function": "t.fn", "after": list(after), **fields}


def node(node_id: str, node_type: str, *after: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "after": list(after), **fields}


def workflow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "t", "nodes": list(nodes), **extra}


def problems(data: dict[str, Any]) -> list[Problem]:
    """What loading and compiling ``data`` reports (the path of ``spane validate``)."""
    with pytest.raises(InvalidWorkflowError) as caught:
        compile_plan(spec_from_data(data))
    return list(caught.value.problems)


def located(found: list[Problem]) -> list[tuple[str, str, str | None]]:
    return [(p.location, p.message, p.hint) for p in found]


# ---------------------------------------------------------------- node type typos
@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("swtich", "switch"),
        ("nop", "noop"),
        ("functon", "function"),
        ("htp", "http"),
        ("trasnform", "transform"),
        ("delya", "delay"),
        ("wait-for-signal", "wait_for_signal"),
        ("subworkflow", "sub_workflow"),
        ("foreach", "for_each"),
        ("whlie", "while"),
        ("reapeat", "repeat"),
        ("brek", "break"),
        ("contine", "continue"),
        ("faill", "fail"),
        ("sets", "set"),
    ],
)
def test_a_near_miss_of_a_builtin_type_is_a_problem_with_a_hint(typo: str, meant: str) -> None:
    found = problems(workflow(fn("a"), node("b", typo, "a")))

    assert [(p.location, p.message) for p in found] == [
        ("nodes[1].type", f"unknown node type {typo!r}")
    ]
    assert found[0].hint is not None
    assert found[0].hint.startswith(f"did you mean {meant!r}?")


def test_every_builtin_type_is_a_candidate() -> None:
    builtins = TASK_TYPES_BUILTIN | CONTROL_TYPES

    assert {near_builtin_type(name + "x") for name in builtins} == builtins
    assert {near_builtin_type(name) for name in builtins} == {None}


@pytest.mark.parametrize("custom", ["image-resize", "email", "pdf", "llm", "ocr.scan"])
def test_a_custom_type_unlike_any_builtin_is_still_a_custom_pool(custom: str) -> None:
    plan = compile_plan(spec_from_data(workflow(node("a", custom))))

    assert plan.nodes["a"].type == custom


def test_naming_the_pool_keeps_a_custom_type_close_to_a_builtin_one() -> None:
    data = workflow(node("a", "mail", pool="mail"), node("b", "https", pool="web"))

    plan = compile_plan(spec_from_data(data))

    assert (plan.nodes["a"].type, plan.nodes["b"].type) == ("mail", "https")
    assert problems(workflow(node("a", "mail")))[0].hint == (
        "did you mean 'fail'? A custom type this close to a built-in one must also set 'pool: mail'"
    )


def test_fields_of_the_meant_type_are_not_reported_as_unknown() -> None:
    cases = [{"name": "big", "when": "input.total > 1"}]

    found = problems(workflow(fn("a"), node("route", "swtich", "a", cases=cases)))

    assert located(found) == [
        (
            "nodes[1].type",
            "unknown node type 'swtich'",
            "did you mean 'switch'? A custom type this close to a built-in one must also "
            "set 'pool: swtich'",
        )
    ]


def test_a_typo_in_a_loop_body_type_is_located_in_the_body() -> None:
    loop = node("loop", "for_each", items=[1], body={"nodes": [node("x", "nop")]})

    found = problems(workflow(loop))

    assert [p.location for p in found] == ["nodes[0].body.nodes[0].type"]


# ---------------------------------------------------------------- field typos
@pytest.mark.parametrize(
    ("data", "location", "hint"),
    [
        (workflow({"id": "a", "functon": "t.fn"}), "nodes[0].functon", "'function'"),
        (
            workflow(fn("a", retry={"max_attemps": 3})),
            "nodes[0].retry.max_attemps",
            "'max_attempts'",
        ),
        (
            workflow(node("a", "http", reqest={"url": "http://x"})),
            "nodes[0].reqest",
            "'request'",
        ),
        (
            workflow(node("a", "http", request={"url": "http://x", "heders": {}})),
            "nodes[0].request.heders",
            "'headers'",
        ),
        (
            workflow(node("a", "wait_for_signal", signal="go", shema={})),
            "nodes[0].shema",
            "'schema'",  # the alias, as written in definitions
        ),
        (workflow(fn("a"), defualts={}), "defualts", "'defaults'"),
        (
            workflow(node("s", "switch", cases=[{"name": "x", "wen": "true"}])),
            "nodes[0].cases[0].wen",
            "'when'",
        ),
        (
            workflow(node("l", "repeat", times=2, body={"nodes": [fn("x", retyr={})]})),
            "nodes[0].body.nodes[0].retyr",
            "'retry'",
        ),
        (
            workflow(fn("a"), triggers=[{"event": "x", "fliter": "true"}]),
            "triggers[0].fliter",
            "'filter'",
        ),
    ],
)
def test_an_unknown_field_gets_the_closest_field_of_its_model(
    data: dict[str, Any], location: str, hint: str
) -> None:
    found = {p.location: p for p in problems(data)}

    assert found[location].message == "unknown field"
    assert found[location].hint == f"did you mean {hint}?"


def test_an_unknown_field_like_no_field_gets_no_hint() -> None:
    [found] = [p for p in problems(workflow(fn("a", zzzzzz=1))) if p.message == "unknown field"]

    assert (found.location, found.hint) == ("nodes[0].zzzzzz", None)


def test_a_misspelt_function_field_is_reported_with_the_missing_one() -> None:
    found = problems(workflow({"id": "a", "functon": "shop.validate"}))

    assert located(found) == [
        ("nodes[0].function", "Field required", None),
        ("nodes[0].functon", "unknown field", "did you mean 'function'?"),
    ]


# ------------------------------------------------ schema and graph problems at once
def test_schema_and_graph_problems_are_reported_together() -> None:
    data = workflow(
        {"id": "a", "functon": "t.fn"},  # schema: unknown field, missing function
        fn("b", "a", "zz"),  # graph: unknown node
        fn("c", "c"),  # graph: after itself
        fn("b"),  # graph: duplicate id
    )

    assert located(problems(data)) == [
        ("nodes[0].function", "Field required", None),
        ("nodes[0].functon", "unknown field", "did you mean 'function'?"),
        ("nodes[1].after[1]", "unknown node 'zz'", None),
        ("nodes[2].after[0]", "node 'c' cannot run after itself", None),
        ("nodes[3].id", "duplicate node id 'b'", "first at nodes[1]"),
    ]


GRAPH_MISTAKES = (
    fn("a", "c"),
    fn("b", "a", "a"),  # listed twice
    fn("c", "b"),  # a -> b -> c -> a
    node("r", "switch", "a", cases=[{"name": "big", "when": "true"}]),
    fn("x", "r.bgi", "chrage"),  # unknown port, unknown node with a hint
    fn("charge"),
    fn("a"),  # duplicate
    node(
        "loop",
        "for_each",
        items=[1],
        body={"nodes": [fn("s", "q"), fn("t", "s.eror")]},
    ),
)


def test_the_graph_problems_of_an_invalid_definition_are_the_compilers() -> None:
    """The same mistakes, found by the compiler on a valid definition and by the draft
    checks on one with an unrelated schema problem, give the same problems."""
    compiled = problems(workflow(*GRAPH_MISTAKES))
    broken = [*GRAPH_MISTAKES, fn("extra", bogus=1)]

    drafted = problems(workflow(*broken))

    assert located(drafted) == located(
        ordered_problems([*compiled, Problem("nodes[8].bogus", "unknown field", None)])
    )
    assert {p.message for p in compiled} >= {
        "cycle: a -> b -> c -> a",
        "upstream port 'a.success' is listed twice",
        "unknown port 'bgi' of node 'r'",
        "unknown node 'chrage'",
        "duplicate node id 'a'",
        "unknown node 'q'",
        "unknown port 'eror' of node 's'",
    }


def test_a_problem_found_twice_is_listed_once() -> None:
    twice = [Problem("nodes[1].id", "duplicate"), Problem("nodes[1].id", "duplicate", "h")]

    assert ordered_problems(twice) == [Problem("nodes[1].id", "duplicate")]


def test_problems_are_ordered_by_location_with_numbers_as_numbers() -> None:
    nodes = [fn(f"n{i}") for i in range(12)]
    nodes[10] = {"id": "n10", "functon": "t.fn", "function": "t.fn"}
    nodes[2] = fn("n2", "missing")
    nodes[0] = fn("n0", retry={"max_attemps": 1})

    found = problems(workflow(*nodes, triggers=[{"cron": "nope"}], defualts={}))

    assert [p.location for p in found] == [
        "defualts",
        "nodes[0].retry.max_attemps",
        "nodes[2].after[0]",
        "nodes[10].functon",
    ]


def test_the_compilers_problems_are_ordered_by_location_too() -> None:
    # found in this order: node checks (nodes[1].when), then cycles (nodes[0].after[0])
    spec = WorkflowSpec.model_validate(
        workflow(fn("a", "b"), fn("b", "a", when="nodes.zz.output"), output="${ nodes.qq }")
    )

    found = validate(spec)

    assert [p.location for p in found] == ["nodes[0].after[0]", "nodes[1].when", "output"]


def test_spane_validate_lists_every_problem_in_one_go(tmp_path: Path) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text(
        "id: typos\n"
        "nodes:\n"
        "  - id: validate\n"
        "    functon: shop.validate\n"
        "  - id: route\n"
        "    type: swtich\n"
        "    after: [validat]\n"
        "    cases: [{name: big, when: 'true'}]\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(app, ["validate", str(path)])

    assert result.exit_code == EXIT_FAILED
    assert result.stdout.splitlines() == [
        f"{path}: nodes[0].function: Field required",
        f"{path}: nodes[0].functon: unknown field (did you mean 'function'?)",
        f"{path}: nodes[1].after[0]: unknown node 'validat' (did you mean 'validate'?)",
        f"{path}: nodes[1].type: unknown node type 'swtich' (did you mean 'switch'? A custom "
        "type this close to a built-in one must also set 'pool: swtich')",
    ]
