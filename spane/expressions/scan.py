"""Lexical scanning of CEL sources and ``${ }`` templates (DESIGN §2, "Expressions"). Pure.

A small CEL lexer finds what an expression reads without evaluating it: its top-level
names, and of each, the fields selected from it by name (``nodes.<id>``,
``nodes["<id>"]``, ``vars.<name>``). It also finds the ``}`` that closes a template's
``${`` (braces inside the expression and inside string literals do not count) and, for
error messages, the path whose missing key an expression selects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from spane.expressions.functions import NAMESPACES

__all__ = ["LexError", "Scan", "expression_end", "key_owner", "reference_scan", "scan"]

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


class LexError(Exception):
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
    raise LexError("a string literal is not terminated")


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


def expression_end(text: str, start: int) -> int:
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
    raise LexError("'${' has no closing '}'")


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


class Scan(NamedTuple):
    """What a CEL source reads, found lexically."""

    roots: frozenset[str]
    fields: Mapping[str, frozenset[str]]  # root -> the fields selected from it by name
    whole: frozenset[str]  # roots also used otherwise (nodes[x], size(input), 'a' in vars)


def scan(source: str) -> Scan:
    """The names ``source`` reads; :class:`LexError` if a string literal does not end."""
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
    return Scan(
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
    found = scan(source)
    empty: frozenset[str] = frozenset()
    return found.roots, found.fields.get("nodes", empty), found.fields.get("vars", empty)


def key_owner(source: str, key: object) -> str | None:
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
