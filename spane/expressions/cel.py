"""CEL expressions and ``${ }`` templates (DESIGN §2, "Expressions" and "Data passing"). Pure.

``compile_expression("nodes.validate.output.valid")`` parses once (cached) and records
what the expression reads: its top-level names (``roots``), the node ids it names
(``nodes.<id>`` or ``nodes["<id>"]``) and the variables (``vars.<name>``), so that a
definition can be checked at registration and a context built with only what is read.
``Expression.evaluate(context)`` runs it against a mapping of those names and returns
plain JSON-like Python values.

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

CEL maps have no order, and CEL does not mix ints and doubles in arithmetic
(``1 + 2.5`` fails; ``double(1) + 2.5`` works); see :mod:`spane.expressions.functions`.

Evaluation calls only Python code registered in :mod:`spane.expressions.functions`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

import cel

from spane.errors import ExpressionEvaluationError, ExpressionSyntaxError
from spane.expressions.functions import NAMESPACES, functions_for, type_name

__all__ = [
    "KNOWN_ROOTS",
    "Expression",
    "Template",
    "compile_expression",
    "compile_template",
    "evaluate_condition",
    "reference_scan",
]

KNOWN_ROOTS: frozenset[str] = frozenset(
    {"input", "data", "nodes", "vars", "execution", "item", "index", "signal", "secrets"}
    | {"event", "iteration"}
)
"""The names an expression context may hold (which ones depends on where it is used)."""

_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one"})
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_LITERAL_WORDS = frozenset({"true", "false", "null", "in"})
_RAW_PREFIXES = frozenset({"r", "R", "rb", "rB", "Rb", "RB", "br", "bR", "Br", "BR"})
_STRING_PREFIXES = _RAW_PREFIXES | {"b", "B"}

# ----------------------------------------------------------------------------- lexing


class _Token(NamedTuple):
    kind: str  # "ident" | "str" | "num" | "punct"
    text: str  # identifier / punctuation text; a string literal's body (without quotes)
    start: int
    end: int


class _LexError(Exception):
    """A string literal does not end (only reachable from template text)."""


_TOKEN_RE = re.compile(
    r"""(?P<space>\s+|//[^\n]*)
    |(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+
        |\.\d+(?:[eE][+-]?\d+)?|\d+[uU]?)
    |(?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
    |(?P<quote>\"\"\"|'''|"|')
    |(?P<punct>.)""",
    re.VERBOSE | re.DOTALL,
)
_QUOTE_RE = re.compile(r"\"\"\"|'''|\"|'")


def _string_end(text: str, pos: int, quote: str, raw: bool) -> int:
    """Index just past the literal whose body starts at ``pos``; raises if it never ends."""
    while pos < len(text):
        char = text[pos]
        if char == "\\" and not raw:
            pos += 2
        elif text.startswith(quote, pos):
            return pos + len(quote)
        elif char == "\n" and len(quote) == 1:
            break
        else:
            pos += 1
    raise _LexError("a string literal is not terminated")


def _tokens(text: str, pos: int = 0) -> Iterator[_Token]:
    """CEL tokens of ``text`` from ``pos`` on; spaces and comments are left out."""
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        assert match is not None  # the last alternative matches any character
        kind, end, raw = match.lastgroup or "punct", match.end(), False
        if kind == "ident" and match.group() in _STRING_PREFIXES:  # r"...", b'...'
            quote = _QUOTE_RE.match(text, end)
            if quote is not None:
                kind, raw, match = "quote", match.group() in _RAW_PREFIXES, quote
        if kind == "quote":
            body = match.end()
            end = _string_end(text, body, match.group(), raw)
            yield _Token("str", text[body : end - len(match.group())], pos, end)
        elif kind != "space":
            yield _Token(kind, match.group(), pos, end)
        pos = end


def _expression_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose expression starts at ``start``."""
    depth = 0
    for token in _tokens(text, start):
        if token.kind != "punct":
            continue
        if token.text == "{":
            depth += 1
        elif token.text == "}":
            if depth == 0:
                return token.start
            depth -= 1
    raise _LexError("'${' has no closing '}'")


# ----------------------------------------------------------------------- references


def _is(tokens: Sequence[_Token], index: int, kind: str, text: str | None = None) -> bool:
    if not 0 <= index < len(tokens):
        return False
    token = tokens[index]
    return token.kind == kind and (text is None or token.text == text)


def _member(tokens: Sequence[_Token], index: int) -> str | None:
    """The field selected at ``index``: ``.name`` or ``["name"]``; ``None`` for anything
    else, a method call ``.name(`` included."""
    if (
        _is(tokens, index, "punct", ".")
        and _is(tokens, index + 1, "ident")
        and not _is(tokens, index + 2, "punct", "(")
    ):
        return tokens[index + 1].text
    if (
        _is(tokens, index, "punct", "[")
        and _is(tokens, index + 1, "str")
        and _is(tokens, index + 2, "punct", "]")
    ):
        return tokens[index + 1].text
    return None


def _is_free_name(tokens: Sequence[_Token], index: int, bound: Sequence[str]) -> bool:
    """Whether the identifier at ``index`` reads a variable of the context."""
    name = tokens[index].text
    if (
        name in _LITERAL_WORDS
        or name in _TYPE_NAMES  # type(x) == int
        or name in bound
        or _is(tokens, index - 1, "punct", ".")  # a field: x.name
        or _is(tokens, index + 1, "punct", "(")  # a function: name(...)
    ):
        return False
    namespaced = (
        name in NAMESPACES
        and _is(tokens, index + 1, "punct", ".")
        and _is(tokens, index + 2, "ident")
        and _is(tokens, index + 3, "punct", "(")
    )
    return not namespaced


class _Scan(NamedTuple):
    roots: frozenset[str]
    fields: Mapping[str, frozenset[str]]  # root -> the fields selected from it by name
    whole: frozenset[str]  # roots also used otherwise (nodes[x], size(input), 'a' in vars)


def _scan(source: str) -> _Scan:
    tokens = list(_tokens(source))
    fields: dict[str, set[str]] = {}
    whole: set[str] = set()
    bound: list[str] = []
    scopes: list[int] = []  # for every open "(": how many names it bound (0 or 1)
    for index, token in enumerate(tokens):
        if token.kind == "punct" and token.text == "(":
            binds = (
                _is(tokens, index - 2, "punct", ".")
                and _is(tokens, index - 1, "ident")
                and tokens[index - 1].text in _MACROS
                and _is(tokens, index + 1, "ident")
                and _is(tokens, index + 2, "punct", ",")
            )
            if binds:
                bound.append(tokens[index + 1].text)
            scopes.append(int(binds))
        elif token.kind == "punct" and token.text == ")" and scopes and scopes.pop():
            bound.pop()
        elif token.kind == "ident" and _is_free_name(tokens, index, bound):
            member = _member(tokens, index + 1)
            fields.setdefault(token.text, set())
            if member is None:
                whole.add(token.text)
            else:
                fields[token.text].add(member)
    return _Scan(
        roots=frozenset(fields),
        fields={root: frozenset(names) for root, names in fields.items()},
        whole=frozenset(whole),
    )


def reference_scan(source: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """``(roots, node_refs, var_refs)`` of a CEL source, found lexically.

    Names bound by the ``map``/``filter``/``all``/``exists``/``exists_one`` macros are not
    roots inside the macro's parentheses; text inside string literals is never a name.
    ``nodes[some_expression]`` names no node (it cannot be known before run time).
    """
    scan = _scan(source)
    empty: frozenset[str] = frozenset()
    return scan.roots, scan.fields.get("nodes", empty), scan.fields.get("vars", empty)


def _key_owner(source: str, key: object) -> str | None:
    """The path (``nodes.validate.output``) whose missing ``key`` the source selects."""
    tokens = list(_tokens(source))  # the source compiled, so this cannot raise
    for index in range(len(tokens)):
        if _member(tokens, index) != key:
            continue
        start = index
        while start > 0:  # walk back over ``.field`` / ``[literal]`` selections
            before = tokens[start - 1]
            if before.kind == "ident" and not _is(tokens, start - 2, "punct", "."):
                return source[before.start : tokens[index].start]
            if before.kind == "ident":
                start -= 2
            elif _is(tokens, start - 1, "punct", "]") and _is(tokens, start - 3, "punct", "["):
                start -= 3
            else:
                break
    return None


# ----------------------------------------------------------------------- evaluation


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
        owner = _key_owner(expression.source, key)
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


def _plain_key(key: Any) -> Any:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _plain(value: Any) -> Any:
    """A CEL result as JSON-like Python: map keys become strings (and maps are sorted by
    them, for determinism), timestamps ISO text, durations seconds, bytes base64, optionals
    their value (or ``None``)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):  # CEL maps have no order (it varies per evaluation): sort
        items = sorted(((_plain_key(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        return {key: _plain(item) for key, item in items}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, cel.OptionalValue):
        return _plain(value.value()) if value.has_value() else None
    return str(value)


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
        return _plain(result)


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
        scan = _scan(source)
    except _LexError as exc:  # pragma: no cover - CEL parsed it, so its literals end
        raise ExpressionSyntaxError(f"invalid expression `{source}`: {exc}") from exc
    empty: frozenset[str] = frozenset()
    return Expression(
        source=source,
        roots=scan.roots,
        node_refs=scan.fields.get("nodes", empty),
        var_refs=scan.fields.get("vars", empty),
        _program=program,
        _functions=functions_for(program.functions()),
        _whole=tuple(sorted(scan.whole)),
        _narrowed=tuple(
            (root, tuple(sorted(names)))
            for root, names in sorted(scan.fields.items())
            if root not in scan.whole
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


# ------------------------------------------------------------------------ templates


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
        end = _expression_end(text, start + 2)
    except _LexError as exc:
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
