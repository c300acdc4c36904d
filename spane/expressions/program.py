"""Compiled CEL expressions (DESIGN §2, "Expressions"). Pure.

``compile_expression("nodes.validate.output.valid")`` parses once (cached) and records
what the expression reads: its top-level names (``roots``), the node ids it names
(``nodes.<id>`` or ``nodes["<id>"]``) and the variables (``vars.<name>``), so that a
definition can be checked at registration and a context built with only what is read
(see :mod:`spane.expressions.scan`). ``Expression.evaluate(context)`` runs it against a
mapping of those names and returns plain JSON-like Python values
(see :mod:`spane.expressions.values`); a failure is reported in a few words naming the
expression.

CEL does not mix ints and doubles in arithmetic (``1 + 2.5`` fails; ``double(1) + 2.5``
works); see :mod:`spane.expressions.functions`. Evaluation calls only Python code
registered there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cel

from spane.errors import ExpressionEvaluationError, ExpressionSyntaxError
from spane.expressions.functions import functions_for, type_name
from spane.expressions.scan import LexError, key_owner, scan
from spane.expressions.values import to_plain

__all__ = ["KNOWN_ROOTS", "Expression", "compile_expression", "evaluate_condition"]

KNOWN_ROOTS: frozenset[str] = frozenset(
    {"input", "data", "nodes", "vars", "execution", "item", "index", "signal", "secrets"}
    | {"event", "iteration"}
)
"""The names an expression context may hold (which ones depends on where it is used)."""

_UNDEFINED_RE = re.compile(r"Undefined variable or function: '([^']*)'")
_FUNCTION_FAILED_RE = re.compile(
    r"Function '([^']*)' error: (?:Python function call failed: )?(?:\w+: )?(.*?)"
    r"(?:\. Check function arguments and their types\.)?$",
    re.DOTALL,
)


def _reason(expression: Expression, error: Exception) -> str:
    """A short account of why ``expression`` failed with ``error`` (a CEL library error)."""
    if isinstance(error, KeyError) and error.args:
        key = error.args[0]
        owner = key_owner(expression.source, key)
        return f"no key {key!r} in {owner}" if owner else f"no key {key!r}"
    text = str(error)
    undefined = _UNDEFINED_RE.search(text)
    if undefined:
        name = undefined.group(1)
        if name in expression.roots:
            known = name in KNOWN_ROOTS
            return f"{name!r} is not available here" if known else f"unknown name {name!r}"
        # CEL reports a function called with argument types it has no overload for the same
        return f"unknown function {name!r}, or it does not take arguments of these types"
    failed = _FUNCTION_FAILED_RE.match(text)
    if failed:
        name, message = failed.groups()
        return f"{name}(): {message.removeprefix(f'{name}: ')}"
    return text or type(error).__name__


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression and the names it reads. Build it with
    :func:`compile_expression`; evaluate it any number of times."""

    source: str
    roots: frozenset[str]
    """Top-level names read (``input``, ``nodes``, ...), without macro-bound variables."""
    node_refs: frozenset[str]
    """Node ids read as ``nodes.<id>`` or ``nodes["<id>"]``."""
    var_refs: frozenset[str]
    """Execution variables read as ``vars.<name>`` or ``vars["<name>"]``."""
    _program: cel.Program = field(repr=False, compare=False)
    _functions: Mapping[str, Any] = field(repr=False, compare=False)
    _whole: tuple[str, ...] = field(repr=False, compare=False)
    """Roots passed to CEL as they are."""
    _narrowed: tuple[tuple[str, tuple[str, ...]], ...] = field(repr=False, compare=False)
    """Roots only ever selected from by name, with those names: CEL converts every value
    it is given, so ``input.total`` gets ``{"total": ...}``, not the whole input."""

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value of the expression, as plain JSON-like Python.

        Only what the expression selects is taken from ``context`` (its ``roots``, and of a
        root read only as ``root.name``, those names), so a large context costs nothing it
        does not read. Any failure raises :class:`~spane.errors.ExpressionEvaluationError`
        naming the expression.
        """
        env = {name: context[name] for name in self._whole if name in context}
        for name, names in self._narrowed:
            if name in context:
                value = context[name]
                if isinstance(value, dict):
                    value = {key: value[key] for key in names if key in value}
                env[name] = value
        if self._functions:
            env.update(self._functions)
        try:
            result = self._program.execute(env)
        except Exception as exc:  # the CEL library raises many types; all mean "failed"
            message = f"expression `{self.source}`: {_reason(self, exc)}"
            raise ExpressionEvaluationError(message) from exc
        return to_plain(result)


def compile_expression(source: str) -> Expression:
    """Compile a CEL expression (cached); :class:`~spane.errors.ExpressionSyntaxError`
    if it does not parse."""
    if not isinstance(source, str):
        raise ExpressionSyntaxError(f"an expression must be a string, not {type(source).__name__}")
    return _compile(source)


@lru_cache(maxsize=4096)
def _compile(source: str) -> Expression:
    if not source.strip():
        raise ExpressionSyntaxError("empty expression")
    try:
        program = cel.compile(source)
    except Exception as exc:  # ValueError from the parser; be generous with the type
        detail = str(exc).removeprefix(f"Failed to parse expression '{source}': ")
        raise ExpressionSyntaxError(f"invalid expression `{source}`: {detail}") from exc
    try:
        found = scan(source)
    except LexError as exc:  # pragma: no cover - CEL parsed it, so its literals end
        raise ExpressionSyntaxError(f"invalid expression `{source}`: {exc}") from exc
    empty: frozenset[str] = frozenset()
    return Expression(
        source=source,
        roots=found.roots,
        node_refs=found.fields.get("nodes", empty),
        var_refs=found.fields.get("vars", empty),
        _program=program,
        _functions=functions_for(program.functions()),
        _whole=tuple(sorted(found.whole)),
        _narrowed=tuple(
            (root, tuple(sorted(names)))
            for root, names in sorted(found.fields.items())
            if root not in found.whole
        ),
    )


def evaluate_condition(expr: Expression, context: Mapping[str, Any]) -> bool:
    """Evaluate a condition (``when``, ``filter``, ...); the result must be a bool."""
    result = expr.evaluate(context)
    if not isinstance(result, bool):
        raise ExpressionEvaluationError(
            f"expression `{expr.source}`: a condition must be a boolean, got {type_name(result)}"
        )
    return result
