"""Values entering an execution: size, JSON, and every ``input_schema`` violation at once."""

from __future__ import annotations

from spane.expressions.limits import check_value

SCHEMA = {
    "type": "object",
    "properties": {
        "total": {"type": "number", "minimum": 0},
        "customer": {"type": "string", "format": "email"},
        "items": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["total", "customer"],
}


def test_every_violation_is_listed_with_its_location():
    problem = check_value(
        {"total": -5, "items": [1, "two", 3]},
        what="execution input",
        schema=SCHEMA,
        max_bytes=1000,
    )
    assert problem is not None
    assert problem.startswith("execution input does not match the input schema (3 problems): ")
    assert "at (root): 'customer' is a required property" in problem
    assert "at items/1: 'two' is not of type 'integer'" in problem
    assert "at total: -5 is less than the minimum of 0" in problem


def test_one_violation_reads_as_one_sentence():
    problem = check_value({"customer": "a@b"}, what="input", schema=SCHEMA, max_bytes=1000)
    assert (
        problem == "input does not match the input schema at (root): 'total' is a required property"
    )


def test_a_valid_value_passes_and_an_invalid_schema_is_named():
    assert (
        check_value({"total": 1, "customer": "x"}, what="i", schema=SCHEMA, max_bytes=1000) is None
    )
    problem = check_value(1, what="i", schema={"type": "nonsense"}, max_bytes=1000)
    assert problem is not None
    assert problem.startswith("the workflow's input_schema is not a valid JSON Schema")


def test_size_and_json_limits_come_first():
    assert check_value("x" * 50, what="i", schema=SCHEMA, max_bytes=10) == (
        "i is 52 bytes, over the limit of 10 bytes"
    )
    problem = check_value({1, 2}, what="i", schema=None, max_bytes=10)
    assert problem is not None
    assert "not JSON-serialisable" in problem
