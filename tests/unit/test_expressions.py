"""CEL expressions, ``${ }`` templates and the SPANE functions (DESIGN §2)."""

from __future__ import annotations

from typing import Any

import cel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spane.errors import ExpressionError, ExpressionEvaluationError, ExpressionSyntaxError
from spane.expressions import (
    KNOWN_ROOTS,
    Expression,
    Template,
    compile_expression,
    compile_template,
    evaluate_condition,
    reference_scan,
)
from spane.expressions.functions import FUNCTIONS, SPANE_FUNCTIONS

SECRETS = frozenset({"secrets"})

CONTEXT: dict[str, Any] = {
    "input": {
        "total": 1500,
        "name": "Ann",
        "items": [
            {"sku": "a", "price": 10, "kind": "book"},
            {"sku": "b", "price": 2.5, "kind": "pen"},
            {"sku": "c", "price": 7, "kind": "book"},
        ],
        "tags": ["x", "y", "x"],
        "flag": True,
        "nothing": None,
        "text": "${ secrets.TOKEN }",
        "empty": "",
    },
    "nodes": {
        "validate": {"output": {"valid": True, "score": 0.75}, "status": "succeeded"},
        "my-node": {"output": [1, 2, 3], "status": "succeeded"},
    },
    "vars": {"count": 3, "limit": 10},
    "execution": {"id": "e-1", "workflow_id": "wf", "version": 2},
    "data": {"a": 1, "b": {"c": [1, 2]}},
}


def evaluate(source: str, context: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(CONTEXT if context is None else context)


# --------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # arithmetic: ints stay ints, doubles stay doubles
        ("1 + 2 * 3", 7),
        ("7 / 2", 3),
        ("7 % 3", 1),
        ("7.0 / 2.0", 3.5),
        ("-input.total", -1500),
        ("double(input.total) * 0.5", 750.0),
        ("3.0", 3.0),
        ("input.total + vars.count", 1503),
        # comparisons (int and double compare across types)
        ("input.total >= 1000", True),
        ("input.total < 1000", False),
        ("2 > 1.5", True),
        ("2 == 2.0", True),
        ("input.name == 'Ann' && input.flag", True),
        ("input.name != 'Ann' || !input.flag", False),
        ("input.total > 1000 ? 'big' : 'small'", "big"),
        ("'y' in input.tags", True),
        ("'total' in input", True),
        ("input.nothing == null", True),
        # strings
        ("'Hello, ' + input.name", "Hello, Ann"),
        ("input.name.size()", 3),
        ("input.name.startsWith('A') && input.name.contains('n')", True),
        ("input.name.matches('^A.n$')", True),
        ("string(input.total) + 'EUR'", "1500EUR"),
        # selection forms
        ("nodes.validate.output.valid", True),
        ('nodes["my-node"].output', [1, 2, 3]),
        ("nodes['my-node'].output[1]", 2),
        ("data.b.c", [1, 2]),
        ("has(input.coupon) ? input.coupon : 'none'", "none"),
        ("has(input.name) ? input.name : 'none'", "Ann"),
        ("execution.workflow_id + '@' + string(execution.version)", "wf@2"),
        # macros
        ("input.items.map(i, i.price > 5, i.sku)", ["a", "c"]),
        ("input.items.filter(i, i.kind == 'book').map(i, i.sku)", ["a", "c"]),
        ("input.items.all(i, has(i.sku))", True),
        ("input.items.exists(i, i.price < 3)", True),
        ("input.items.exists_one(i, i.kind == 'pen')", True),
        ("[1, 2].map(x, [x].map(y, y * 10 + x))", [[11], [22]]),
        ("{'a': 1, 'b': 2}.filter(k, k != 'a')", ["b"]),
        # values come back as plain JSON-like Python
        ("{'a': [1, {'b': null}]}", {"a": [1, {"b": None}]}),
        ("{2: 'two', 1: 'one'}", {"1": "one", "2": "two"}),
        ("{true: 'yes'}", {"true": "yes"}),
        ("timestamp('2024-01-01T10:00:00Z')", "2024-01-01T10:00:00Z"),
        ("timestamp('2024-01-01T10:00:00.5Z')", "2024-01-01T10:00:00.500000Z"),
        ("duration('90s')", 90),
        ("duration('1.5s')", 1.5),
        ("timestamp('2024-01-02T00:00:00Z') - timestamp('2024-01-01T00:00:00Z')", 86400),
        ("b'hi'", "aGk="),
        ("null", None),
        ("type(input.total) == int", True),
    ],
)
def test_evaluate(source: str, expected: Any) -> None:
    result = evaluate(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "context", "message"),
    [
        ("nodes.validate.output.x", None, "no key 'x' in nodes.validate.output"),
        ('nodes["my-node"].missing', None, """no key 'missing' in nodes["my-node"]"""),
        ("nodes.absent.output", None, "no key 'absent' in nodes"),
        ("input.items.map(i, i.weight)", None, "no key 'weight' in i"),
        ("{'a': 1}['b']", None, "no key 'b'"),
        ("item.sku", None, "'item' is not available here"),
        ("unknown_name + 1", None, "unknown name 'unknown_name'"),
        ("nosuchfn(1)", None, "unknown function 'nosuchfn'"),
        ("size(1)", None, "unknown function 'size', or it does not take arguments"),
        ("1 + 2.5", None, "No such overload"),
        ("input.name + 1", None, "string + int"),
        ("1 / 0", None, "division by zero"),
        ("input.tags[7]", None, "index out of bounds"),
        ("int('abc')", None, "int(): string parse error"),
        ("9223372036854775807 + 1", None, "overflow"),
        ("x.y", {"x": object()}, "Conversion Error"),
    ],
)
def test_evaluation_errors_name_the_expression(
    source: str, context: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ExpressionEvaluationError) as caught:
        evaluate(source, context)
    assert message in str(caught.value)
    assert f"`{source}`" in str(caught.value)
    assert isinstance(caught.value, ExpressionError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.total >= 1000", True),
        ("nodes.validate.output.score > 0.9", False),
        ("input.items.exists(i, i.kind == 'pen')", True),
    ],
)
def test_evaluate_condition(source: str, expected: Any) -> None:
    assert evaluate_condition(compile_expression(source), CONTEXT) is expected


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("input.total", "int"),
        ("input.nothing", "null"),
        ("input.name", "string"),
        ("nodes.validate.output.score", "double"),
        ("input.items", "list"),
        ("data", "map"),
    ],
)
def test_evaluate_condition_requires_a_bool(source: str, kind: str) -> None:
    with pytest.raises(ExpressionEvaluationError, match=f"must be a boolean, got {kind}$"):
        evaluate_condition(compile_expression(source), CONTEXT)


def test_only_what_is_read_is_taken_from_the_context() -> None:
    # CEL converts every value it is given; unrelated (even unconvertible) values are not
    # handed over, and a root read only as ``root.name`` passes just those names.
    junk = object()
    context = {"input": {"a": 1, "junk": junk}, "other": junk, "nodes": {"x": {"o": junk}}}
    assert evaluate("input.a + 1", context) == 2
    assert evaluate("has(input.b)", context) is False
    assert evaluate("has(nodes.y)", context) is False
    with pytest.raises(ExpressionEvaluationError, match="Conversion Error"):
        evaluate("size(input)", context)  # the whole input is read, junk included


def test_maps_come_back_sorted_by_key() -> None:
    # CEL maps are unordered (the order changes between evaluations); results are sorted
    for _ in range(5):
        assert list(evaluate("{'b': 1, 'c': 2, 'a': {'z': 1, 'y': 2}}")) == ["a", "b", "c"]
        assert list(evaluate("data.merge({'0': 0})")) == ["0", "a", "b"]
        assert list(evaluate("{'b': 1, 'a': {'z': 1, 'y': 2}}.a")) == ["y", "z"]


def test_compiled_expressions_are_cached_and_comparable() -> None:
    first = compile_expression("input.total > 1")
    assert compile_expression("input.total > 1") is first
    assert first == compile_expression("input.total > 1")
    assert {first: 1}[first] == 1
    assert "input.total > 1" in repr(first)


def test_known_roots() -> None:
    assert (
        frozenset(
            {"input", "data", "nodes", "vars", "execution", "item", "index", "signal", "secrets"}
            | {"event", "iteration"}
        )
        == KNOWN_ROOTS
    )


# ------------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    "source",
    ["1 +", "input.", "'unterminated", "a.b.c(", "(1", "x.?y", "has(x)", "   ", ""],
)
def test_syntax_errors_name_the_source(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(source)
    message = str(caught.value)
    assert source.strip() in message
    assert isinstance(caught.value, ValueError)


def test_syntax_error_keeps_the_parser_text() -> None:
    with pytest.raises(ExpressionSyntaxError, match="Syntax error: mismatched input"):
        compile_expression("1 +")


def test_non_string_source_is_refused() -> None:
    with pytest.raises(ExpressionSyntaxError, match="must be a string"):
        compile_expression(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("source", "roots", "node_refs", "var_refs"),
    [
        ("input.total > 1", {"input"}, set(), set()),
        ("nodes.validate.output.valid", {"nodes"}, {"validate"}, set()),
        ('nodes["my-node"].output', {"nodes"}, {"my-node"}, set()),
        ("nodes['a-b'].output + nodes.c_d.output", {"nodes"}, {"a-b", "c_d"}, set()),
        ("nodes[ 'spaced' ].status", {"nodes"}, {"spaced"}, set()),
        ("vars.count + vars['other'] > 1", {"vars"}, set(), {"count", "other"}),
        ("has(nodes.charge) && nodes.charge.status == 'ok'", {"nodes"}, {"charge"}, set()),
        # text inside string literals is never a reference
        ("'nodes.fake' + nodes.real.output", {"nodes"}, {"real"}, set()),
        ('"vars.x and input.y" == data', {"data"}, set(), set()),
        ('r"nodes.raw" + """nodes.triple "x" """', set(), set(), set()),
        ("b'nodes.bytes' == b''", set(), set(), set()),
        ("'it\\'s nodes.escaped' == input", {"input"}, set(), set()),
        ("1 + // nodes.commented\n 2", set(), set(), set()),
        # comprehension variables are bound, not roots
        ("input.items.map(i, i.price)", {"input"}, set(), set()),
        ("input.items.filter(x, x > vars.min)", {"input", "vars"}, set(), {"min"}),
        ("data.all(k, k != '') && data.exists(k, k == 'a')", {"data"}, set(), set()),
        ("input.xs.exists_one(x, x == 1)", {"input"}, set(), set()),
        ("[1].map(x, [2].map(y, x + y + index))", {"index"}, set(), set()),
        ("input.xs.map(x, x) + [x]", {"input", "x"}, set(), set()),
        ("input.xs.map(input, input) + [input]", {"input"}, set(), set()),
        ("[1].map(nodes, nodes.fake)", set(), set(), set()),
        # dynamic selections name nothing; method calls are not fields
        ("nodes[input.id].output", {"nodes", "input"}, set(), set()),
        ("nodes.map(n, n)", {"nodes"}, set(), set()),
        ("size(nodes) + size(vars)", {"nodes", "vars"}, set(), set()),
        # functions, namespaced functions and type names are not roots
        ("math.greatest(1, input.a)", {"input"}, set(), set()),
        ("sum(input.items.map(i, i.price))", {"input"}, set(), set()),
        ("type(item) == int", {"item"}, set(), set()),
        ("true && false || null == null", set(), set(), set()),
        ("{'k': signal.v}", {"signal"}, set(), set()),
        ("event.data.total > 0", {"event"}, set(), set()),
    ],
)
def test_references(source: str, roots: set[str], node_refs: set[str], var_refs: set[str]) -> None:
    expression = compile_expression(source)
    assert expression.roots == roots
    assert expression.node_refs == node_refs
    assert expression.var_refs == var_refs
    assert reference_scan(source) == (expression.roots, expression.node_refs, expression.var_refs)
    # everything found is a variable as far as the CEL parser is concerned
    assert expression.roots <= set(cel.compile(source).variables())


# ----------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # a single ${ } keeps the value's type
        ("${ input.total }", 1500),
        ("${input.total}", 1500),
        ("  ${ input.total }\n", 1500),
        ("${ input.items.map(i, i.sku) }", ["a", "b", "c"]),
        ("${ nodes.validate.output }", {"valid": True, "score": 0.75}),
        ("${ input.flag }", True),
        ("${ input.nothing }", None),
        ("${ 3.0 }", 3.0),
        # mixed text renders to a string
        ("Hello ${ input.name }!", "Hello Ann!"),
        ("${ input.name }${ input.name }", "AnnAnn"),
        ("n=${ input.total } f=${ input.flag } z=${ input.nothing }", "n=1500 f=true z=null"),
        ("x=${ 3.0 } y=${ 2.5 } no=${ false }", "x=3.0 y=2.5 no=false"),
        ("tags: ${ input.tags }", 'tags: ["x","y","x"]'),
        ("map: ${ {'a': 1, 'é': [true, null]} }", 'map: {"a":1,"é":[true,null]}'),
        # escapes
        ("price: $${ input.total }", "price: ${ input.total }"),
        ("$${ a } and ${ input.total }", "${ a } and 1500"),
        ("$$${ input.total }", "$${ input.total }"),
        ("cost: $5 and ${ input.total }", "cost: $5 and 1500"),
        ("a } b { c", "a } b { c"),
        # braces inside ${ }: map literals and string literals
        ("${ {'a': 1}.a }", 1),
        ("${ {'a': {'b': 2}}.a.b } items", "2 items"),
        ('${ "}" + input.name }', "}Ann"),
        ("${ '{' + \"}}\" }", "{}}"),
        ("${ r'}\\' + '\\'}' }", "}\\'}"),
        ('${ """}""" }', "}"),
        ("${ 1 + // comment }\n 2 }", 3),
        # nested values: dict values and list items, not dict keys
        (
            {"amount": "${ input.total }", "currency": "EUR", "${ k }": "${ vars.count }"},
            {"amount": 1500, "currency": "EUR", "${ k }": 3},
        ),
        (
            ["${ input.name }", 1, None, ["${ vars.limit }", {"x": "${ data.a }"}]],
            ["Ann", 1, None, [10, {"x": 1}]],
        ),
        (("${ vars.count }", "t"), [3, "t"]),
    ],
)
def test_render(value: Any, expected: Any) -> None:
    assert compile_template(value).render(CONTEXT) == expected


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        42,
        1.5,
        True,
        None,
        ["a", {"b": [1, "c"]}],
        {"k": {"${ key }": "v"}},
        "a $ { not } $x {y}",
    ],
)
def test_static_templates_render_unchanged(value: Any) -> None:
    template = compile_template(value)
    assert template.is_static
    assert template.expressions == ()
    assert template.render(CONTEXT) is value
    assert template.render({}, defer=SECRETS) is value


def test_template_expressions_in_order() -> None:
    template = compile_template(
        {"a": "${ input.a } ${ data.b }", "b": ["$${ skipped }", "${ vars.c }"], "c": "x"}
    )
    assert [e.source for e in template.expressions] == ["input.a", "data.b", "vars.c"]
    assert not template.is_static
    assert isinstance(template, Template)
    assert all(isinstance(e, Expression) for e in template.expressions)


def test_escape_only_string_is_not_static() -> None:
    template = compile_template("$${ x }")
    assert not template.is_static
    assert template.expressions == ()
    assert template.render({}) == "${ x }"


def test_static_parts_are_shared_not_copied() -> None:
    static = {"x": [1, 2]}
    rendered = compile_template({"s": static, "d": "${ vars.count }"}).render(CONTEXT)
    assert rendered == {"s": static, "d": 3}
    assert rendered["s"] is static


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("${ 1 + }", "invalid expression `1 +`"),
        ("abc ${ input.x", "'${' has no closing '}'"),
        ("${ {'a': 1 }", "'${' has no closing '}'"),
        ("${ 'abc }", "string literal is not terminated"),
        ("${ }", "empty '${ }'"),
        ("ok ${   } ok", "empty '${ }'"),
        ({"headers": {"Authorization": "Bearer ${ ) }"}}, "headers.Authorization: "),
        ({"items": ["ok", {"x": "${ 1 + }"}]}, "items[1].x: "),
        (["${ ( }"], "[0]: "),
    ],
)
def test_template_syntax_errors_name_the_part(value: Any, fragment: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_template(value)
    assert fragment in str(caught.value)


def test_template_rendering_errors_name_the_expression() -> None:
    template = compile_template({"a": "total: ${ input.missing + 1 }"})
    with pytest.raises(ExpressionEvaluationError, match=r"`input.missing \+ 1`: no key 'missing'"):
        template.render(CONTEXT)


# -------------------------------------------------------------------------- defer

FULL = {**CONTEXT, "secrets": {"TOKEN": "s3cr3t", "USER": "ann"}}


@pytest.mark.parametrize(
    ("value", "deferred"),
    [
        ("Bearer ${ secrets.TOKEN }", "Bearer ${ secrets.TOKEN }"),
        ("${ secrets.TOKEN }", "${ secrets.TOKEN }"),
        (" ${secrets.TOKEN} ", " ${secrets.TOKEN} "),
        ("${ secrets.USER }:${ secrets['TOKEN'] }", "${ secrets.USER }:${ secrets['TOKEN'] }"),
        ("${ input.name }:${ secrets.TOKEN }", "Ann:${ secrets.TOKEN }"),
        ("${ 1 + 1 } ${ secrets.TOKEN }", "2 ${ secrets.TOKEN }"),  # no roots: evaluated
        ("${ input.total }", 1500),
        # other ${ are escaped, so that rendering again cannot evaluate them
        ("$${ lit } ${ secrets.TOKEN }", "$${ lit } ${ secrets.TOKEN }"),
        ("${ input.text } ${ secrets.TOKEN }", "$${ secrets.TOKEN } ${ secrets.TOKEN }"),
        ("${ input.text }", "$${ secrets.TOKEN }"),
        ("${ [input.text] }", ["$${ secrets.TOKEN }"]),
        ("$${ lit }", "$${ lit }"),
        # a "$" just before a deferred part would read as the escape "$${"
        ("${ '$' }${ secrets.TOKEN }", "${ '$' }${ secrets.TOKEN }"),
        ("${ '$$' }${ secrets.TOKEN }", "${ '$$' }${ secrets.TOKEN }"),
        # a string made of one deferred part and blanks would read as one whole ${ }
        ("${ input.empty } ${ secrets.TOKEN }", " ${ secrets.TOKEN }${ '' }"),
        (
            {"h": {"Authorization": "Bearer ${ secrets.TOKEN }"}, "n": "${ vars.count }"},
            {"h": {"Authorization": "Bearer ${ secrets.TOKEN }"}, "n": 3},
        ),
    ],
)
def test_defer(value: Any, deferred: Any) -> None:
    template = compile_template(value)
    context = {key: item for key, item in FULL.items() if key != "secrets"}
    once = template.render(context, defer=SECRETS)
    assert once == deferred
    # the deferred result is a template: rendering it with secrets gives the full result
    assert compile_template(once).render(FULL) == template.render(FULL)


def test_defer_needs_every_root_deferred() -> None:
    template = compile_template("${ secrets.TOKEN + input.name }")
    with pytest.raises(ExpressionEvaluationError, match="'secrets' is not available here"):
        template.render(CONTEXT, defer=SECRETS)


@given(st.text())
def test_defer_never_lets_data_inject_an_expression(text: str) -> None:
    template = compile_template({"a": "${ input.s }", "b": "${ input.s }:${ secrets.TOKEN }"})
    once = template.render({"input": {"s": text}}, defer=SECRETS)
    assert compile_template(once).render({"secrets": {"TOKEN": "t"}}) == {
        "a": text,
        "b": f"{text}:t",
    }


TEMPLATE_PIECES = st.sampled_from(
    ["${ input.s }", "${ secrets.TOKEN }", "${ size(secrets.TOKEN) }", "${ '$' }", "${ 2 }"]
) | st.sampled_from(["$${", "$", "$$", "{", "}", " ", "x"])


@given(st.lists(TEMPLATE_PIECES, max_size=8), st.text(alphabet="${} x", max_size=6))
def test_rendering_a_deferred_result_again_gives_the_full_result(
    pieces: list[str], text: str
) -> None:
    try:
        template = compile_template("".join(pieces))
        expected = template.render({"input": {"s": text}, "secrets": {"TOKEN": "t"}})
    except ExpressionError:  # e.g. "${" + "x}": an unknown name
        return
    once = template.render({"input": {"s": text}}, defer=SECRETS)
    twice = compile_template(once).render({"secrets": {"TOKEN": "t"}})
    assert twice == expected
    assert type(twice) is type(expected)


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_rendering_a_static_template_returns_it_unchanged(value: Any) -> None:
    try:
        template = compile_template(value)
    except ExpressionSyntaxError:  # e.g. an unclosed "${": a template, and a bad one
        assert "${" in repr(value)
        return
    if template.is_static:
        assert template.render({}) is value
        assert template.render({}, defer=SECRETS) is value
    else:  # only strings holding "${" make a template dynamic
        assert "${" in repr(value)


@given(JSON_VALUES.filter(lambda value: "${" not in repr(value)))
def test_values_without_placeholders_are_static(value: Any) -> None:
    template = compile_template(value)
    assert template.is_static
    assert template.render(CONTEXT) is value


# ------------------------------------------------------------------ SPANE functions


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("merge({'a': 1, 'b': 1}, {'b': 2, 'c': 3})", {"a": 1, "b": 2, "c": 3}),
        ("merge(data, {'a': 9}, {'z': 0})", {"a": 9, "b": {"c": [1, 2]}, "z": 0}),
        ("data.merge({'a': 2}).a", 2),
        ("sum(input.items.map(i, i.price))", 19.5),
        ("sum([1, 2, 3])", 6),
        ("sum([])", 0),
        ("sum(1, 2.5)", 3.5),
        ("chunk([1, 2, 3, 4, 5], 2)", [[1, 2], [3, 4], [5]]),
        ("chunk([], 3)", []),
        ("input.tags.chunk(1)", [["x"], ["y"], ["x"]]),
        ("pick(nodes.validate.output, ['score', 'absent'])", {"score": 0.75}),
        ("keys(group_by(input.items, 'kind'))", ["book", "pen"]),
        (
            "group_by(input.items, 'kind')['book'].map(i, i.sku)",
            ["a", "c"],
        ),
        (
            "group_by([{'n': 1}, {'n': 2}, {'n': 1}], 'n')",
            {"1": [{"n": 1}, {"n": 1}], "2": [{"n": 2}]},
        ),
        ("keys(data)", ["a", "b"]),
        ("keys({'b': 1, 'c': 2, 'a': 3})", ["a", "b", "c"]),
        ("values({'b': 1, 'c': 2, 'a': 3})", [3, 1, 2]),
        ("keys({2: 'x', 1: 'y'})", [1, 2]),
        ("values({'x': 1, 'y': [2]})", [1, [2]]),
        ("flatten([[1, 2], [3], [], 4])", [1, 2, 3, 4]),
        ("flatten([[1, [2]], [[3]]])", [1, [2], [3]]),
        ("flatten([[1, [2]], [[3]]], 2)", [1, 2, 3]),
        ("unique(input.tags)", ["x", "y"]),
        (
            "unique([1, true, 1.0, 'a', 'a', [1], [1], {'k': 1}, {'k': 1}, null, null])",
            [1, True, "a", [1], {"k": 1}, None],
        ),
        ("min(input.items.map(i, i.price))", 2.5),
        ("max(input.items.map(i, i.price))", 10),
        ("max(3, 9, 4)", 9),
        ("min(['b', 'a'])", "a"),
        ("input.items.map(i, i.price).max()", 10),
        # the cel-go extension library of the CEL package
        ("'a,b'.split(',')", ["a", "b"]),
        ("['a', 'b'].join('-')", "a-b"),
        ("input.name.lowerAscii()", "ann"),
        ("math.greatest(1, 5, 3)", 5),
        ("[3, 1, 2].sort()", [1, 2, 3]),
        ("lists.range(3)", [0, 1, 2]),
        ("base64.encode(b'hi')", "aGk="),
        # native CEL still wins where it has the function
        ("'abc'.contains('b')", True),
        ("[1, 2].contains(2)", True),
        ("size(input.items)", 3),
    ],
)
def test_functions(source: str, expected: Any) -> None:
    assert evaluate(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("merge({'a': 1}, [1])", "merge(): argument 2 must be a map, got list"),
        ("sum([1, true])", "sum(): item 1 is a bool, not a number"),
        ("sum(['a'])", "sum(): item 0 is a string, not a number"),
        ("chunk([1], 0)", "chunk(): size must be an int of at least 1, got 0"),
        ("chunk({'a': 1}, 1)", "chunk(): argument 1 must be a list, got map"),
        ("pick([1], ['a'])", "pick(): argument 1 must be a map"),
        ("group_by(input.items, 'weight')", "group_by(): item 0 has no key 'weight'"),
        ("group_by(input.items, 'price')", "group_by(): item 1 has a double under 'price'"),
        ("group_by([1], 'a')", "group_by(): item 0 must be a map, got int"),
        ("keys([1])", "keys(): argument must be a map, got list"),
        ("min([])", "min(): the list is empty"),
        ("max([1, 'a'])", "max(): item 1 is a string, not a number"),
        ("flatten([[1]], -1)", "flatten(): depth must be an int of at least 0"),
    ],
)
def test_function_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionEvaluationError) as caught:
        evaluate(source)
    assert message in str(caught.value)


def test_spane_functions_are_all_registered() -> None:
    assert set(SPANE_FUNCTIONS) == {
        "merge",
        "sum",
        "min",
        "max",
        "chunk",
        "pick",
        "group_by",
        "keys",
        "values",
        "flatten",
        "unique",
    }
    assert all(FUNCTIONS[name] is function for name, function in SPANE_FUNCTIONS.items())
