"""``${ }`` templates (DESIGN §2, "Data passing"). Pure.

``compile_template(value)`` compiles a JSON-like value whose strings may hold
``${ expr }`` parts. A string that is exactly one ``${ expr }`` (blanks around it allowed)
renders to the value with its type; a string mixing text and parts renders to a string
(``null``, ``true``, ``false``, compact JSON for lists and maps). ``$${`` is a literal
``${``, so no expression can follow a literal ``$``: write ``${ '$' }${ expr }``.

``render(context, defer={"secrets"})`` keeps the parts that read only deferred names as
``${ ... }`` text for a later stage (the worker, which alone sees secrets). Its result is
then itself a template: every other ``${`` — from literal text or from evaluated data — is
escaped as ``$${``, so that rendering the result again gives exactly the intended value
and data can never smuggle in an expression (``"${ secrets.X }"`` in a user's input stays
text). The later stage must therefore render a deferred result again, with the deferred
names in its context. (Two more rewrites keep that exact: a ``$`` just before a deferred
part becomes ``${ '$' }``, and a string left as one deferred part among blanks gets
``${ '' }`` so that it stays a string.)

The expressions inside are compiled by :mod:`spane.expressions.program`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from spane.errors import ExpressionSyntaxError
from spane.expressions.program import Expression, compile_expression
from spane.expressions.scan import LexError, expression_end

__all__ = ["Template", "compile_template"]


def _escape(text: str) -> str:
    return text.replace("${", "$${")


def _escape_value(value: Any) -> Any:
    """``value`` with ``${`` escaped in every string (map keys are not templated)."""
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, list):
        return [_escape_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _escape_value(item) for key, item in value.items()}
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _deferred(expression: Expression, defer: frozenset[str]) -> bool:
    return bool(expression.roots) and expression.roots <= defer


class _Node(Protocol):
    def render(self, context: Mapping[str, Any], defer: frozenset[str]) -> Any: ...
    def expressions(self) -> Iterator[Expression]: ...


@dataclass(frozen=True, slots=True)
class _Static:
    value: Any

    def render(self, context: Mapping[str, Any], defer: frozenset[str]) -> Any:
        return self.value

    def expressions(self) -> Iterator[Expression]:
        return iter(())


@dataclass(frozen=True, slots=True)
class _Part:
    expression: Expression
    text: str  # as written, ``${ ... }`` included


@dataclass(frozen=True, slots=True)
class _Whole:
    part: _Part
    text: str

    def render(self, context: Mapping[str, Any], defer: frozenset[str]) -> Any:
        if _deferred(self.part.expression, defer):
            return self.text
        value = self.part.expression.evaluate(context)
        return _escape_value(value) if defer else value

    def expressions(self) -> Iterator[Expression]:
        yield self.part.expression


@dataclass(frozen=True, slots=True)
class _Mixed:
    parts: tuple[str | _Part, ...]

    def render(self, context: Mapping[str, Any], defer: frozenset[str]) -> str:
        if not defer:
            return "".join(
                part if isinstance(part, str) else _as_text(part.expression.evaluate(context))
                for part in self.parts
            )
        runs = [""]  # the text around the deferred parts, which are kept as written
        kept: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                runs[-1] += part
            elif not _deferred(part.expression, defer):
                runs[-1] += _as_text(part.expression.evaluate(context))
            else:
                kept.append(part.text)
                runs.append("")
        texts = [_escape(run) for run in runs]
        for index in range(len(kept)):  # "$" + "${" would read as the escape "$${"
            dollars = len(texts[index]) - len(texts[index].rstrip("$"))
            if dollars:
                texts[index] = texts[index][:-dollars] + f"${{ '{'$' * dollars}' }}"
        if len(kept) == 1 and not "".join(texts).strip():  # would read as one whole ${ }
            texts[-1] += "${ '' }"
        return "".join(text + part for text, part in zip(texts, [*kept, ""], strict=True))

    def expressions(self) -> Iterator[Expression]:
        return (part.expression for part in self.parts if isinstance(part, _Part))


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple[_Node, ...]

    def render(self, context: Mapping[str, Any], defer: frozenset[str]) -> list[Any]:
        return [item.render(context, defer) for item in self.items]

    def expressions(self) -> Iterator[Expression]:
        for item in self.items:
            yield from item.expressions()


@dataclass(frozen=True, slots=True)
class _Dict:
    items: tuple[tuple[Any, _Node], ...]

    def render(self, context: Mapping[str, Any], defer: frozenset[str]) -> dict[Any, Any]:
        return {key: node.render(context, defer) for key, node in self.items}

    def expressions(self) -> Iterator[Expression]:
        for _, node in self.items:
            yield from node.expressions()


def _compile_part(text: str, start: int, where: str) -> tuple[_Part, int]:
    """The ``${ ... }`` part starting at ``start`` (at ``$``) and the index after it."""
    try:
        end = expression_end(text, start + 2)
    except LexError as exc:
        raise ExpressionSyntaxError(f"{where}{exc} in {text!r}") from exc
    inner = text[start + 2 : end].strip()
    if not inner:
        raise ExpressionSyntaxError(f"{where}empty '${{ }}' in {text!r}")
    try:
        expression = compile_expression(inner)
    except ExpressionSyntaxError as exc:
        raise ExpressionSyntaxError(f"{where}{exc} (in {text!r})") from exc
    return _Part(expression, text[start : end + 1]), end + 1


def _compile_string(text: str, where: str) -> _Node:
    if "${" not in text:
        return _Static(text)
    parts: list[str | _Part] = []
    literal: list[str] = []
    pos = 0
    while (start := text.find("${", pos)) >= 0:
        if start > 0 and text[start - 1] == "$":  # "$${" is a literal "${"
            literal.append(text[pos : start - 1] + "${")
            pos = start + 2
            continue
        literal.append(text[pos:start])
        part, pos = _compile_part(text, start, where)
        parts += ("".join(literal), part)
        literal.clear()
    parts.append("".join(literal) + text[pos:])
    expressions = [part for part in parts if isinstance(part, _Part)]
    texts = [part for part in parts if isinstance(part, str)]
    if len(expressions) == 1 and not "".join(texts).strip():
        return _Whole(expressions[0], text)
    return _Mixed(tuple(part for part in parts if part != ""))


def _compile_node(value: Any, path: str) -> _Node:
    if isinstance(value, str):
        return _compile_string(value, f"{path}: " if path else "")
    if isinstance(value, dict):
        items = tuple(
            (key, _compile_node(item, f"{path}.{key}" if path else str(key)))
            for key, item in value.items()
        )
        if all(isinstance(node, _Static) for _, node in items):
            return _Static(value)
        return _Dict(items)
    if isinstance(value, list | tuple):
        nodes = tuple(_compile_node(item, f"{path}[{i}]") for i, item in enumerate(value))
        if all(isinstance(node, _Static) for node in nodes):
            return _Static(value)
        return _List(nodes)
    return _Static(value)


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled JSON-like value (str / list / dict / scalars, nested) whose strings may
    contain ``${ expr }`` parts. Build it with :func:`compile_template`."""

    expressions: tuple[Expression, ...]
    """Every expression inside, in order (dict values in order, list items in order)."""
    is_static: bool
    """Nothing to render (no ``${`` anywhere): :meth:`render` returns the value as given."""
    _root: _Node = field(repr=False, compare=False)

    def render(self, context: Mapping[str, Any], *, defer: frozenset[str] = frozenset()) -> Any:
        """The value with every ``${ }`` part replaced (see the module docstring).

        Parts reading only names in ``defer`` stay ``${ ... }`` text, and the result is then
        a template for a later stage. Static parts of the value are returned as they are,
        not copied: do not mutate the result in place.
        """
        return self._root.render(context, defer)


def compile_template(value: Any) -> Template:
    """Compile every ``${ }`` part in ``value`` (dict values and list items, recursively;
    dict keys are not templated); :class:`~spane.errors.ExpressionSyntaxError` names the
    bad part and where it is."""
    root = _compile_node(value, "")
    return Template(
        expressions=tuple(root.expressions()),
        is_static=isinstance(root, _Static),
        _root=root,
    )
