"""Checks on values entering an execution: JSON Schema and size limits. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

DEFAULT_MAX_VALUE_BYTES = 1024 * 1024


def encoded_size(value: Any) -> int:
    """Size of ``value`` as compact JSON; raises ``TypeError`` if it is not JSON."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def check_value(
    value: Any, *, what: str, schema: Mapping[str, Any] | None, max_bytes: int
) -> str | None:
    """A message naming the problem, or None when ``value`` is acceptable."""
    try:
        size = encoded_size(value)
    except (TypeError, ValueError) as exc:
        return f"{what} is not JSON-serialisable: {exc}"
    if size > max_bytes:
        return f"{what} is {size} bytes, over the limit of {max_bytes} bytes"
    if schema is not None:
        return schema_problems(value, schema, what)
    return None


def schema_problems(value: Any, schema: Mapping[str, Any], what: str) -> str | None:
    """Every way ``value`` fails ``schema`` (sorted by location), in one message."""
    document = dict(schema)
    try:
        validator_class = jsonschema.validators.validator_for(document)
        validator_class.check_schema(document)
    except jsonschema.SchemaError as exc:
        return f"the workflow's input_schema is not a valid JSON Schema: {exc.message}"
    errors = sorted(
        validator_class(document).iter_errors(value), key=lambda e: list(e.absolute_path)
    )
    if not errors:
        return None
    lines = [
        f"at {'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in errors
    ]
    if len(lines) == 1:
        return f"{what} does not match the input schema {lines[0]}"
    return f"{what} does not match the input schema ({len(lines)} problems): " + "; ".join(lines)
