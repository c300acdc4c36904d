"""Secrets for task parameters: ``${ secrets.NAME }`` resolved on the worker (DESIGN §2).

The orchestrator renders a node's parameters with ``defer={"secrets"}``: every part that
reads only ``secrets`` stays ``${ ... }`` text and every other ``${`` is escaped as
``$${``. The worker, which alone can see secrets, renders that result once more with
:func:`resolve_secrets`, looking up exactly the names the expressions reference in a
:class:`SecretProvider`. Secret values are never logged, stored or put in error messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from spane.errors import ExpressionEvaluationError, ExpressionSyntaxError, TaskError
from spane.expressions import Template, compile_template

__all__ = [
    "EnvSecretProvider",
    "MappingSecretProvider",
    "SecretProvider",
    "resolve_secrets",
]

_ROOT = "secrets"

# A string literal (skipped, so that text inside quotes is never a reference), a literal
# selection ``secrets.NAME`` / ``secrets["NAME"]``, or any other use of ``secrets``.
_REFERENCE_RE = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
    |(?<![\w.])secrets\s*(?:
        \.\s*(?P<field>[A-Za-z_]\w*)
        |\[\s*(?P<quote>["'])(?P<key>[^"'\\]*)(?P=quote)\s*\]
    )
    |(?P<bare>(?<![\w.])secrets\b)""",
    re.VERBOSE,
)


class SecretProvider(Protocol):
    """Where a worker finds secret values by name."""

    def get(self, name: str) -> str | None:
        """The value of secret ``name``, or ``None`` when it is not set."""
        ...


@dataclass(frozen=True, slots=True)
class EnvSecretProvider:
    """Secrets from the worker's environment: ``secrets.NAME`` reads ``$<prefix>NAME``."""

    prefix: str = ""

    def get(self, name: str) -> str | None:
        return os.environ.get(self.prefix + name)


class MappingSecretProvider:
    """Secrets from a mapping given in code (embedded mode, tests)."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = dict(mapping)

    def get(self, name: str) -> str | None:
        return self._mapping.get(name)

    def __repr__(self) -> str:  # never show the values
        return f"MappingSecretProvider(names={sorted(self._mapping)!r})"


@dataclass(frozen=True, slots=True)
class _SecretString:
    """A compiled string with ``${`` in it and the secret names its expressions read."""

    template: Template
    names: frozenset[str]


def _secret_names(source: str) -> frozenset[str]:
    """The names selected as ``secrets.NAME`` / ``secrets["NAME"]`` in a CEL source.

    Any other use of ``secrets`` (``secrets[name]``, ``secrets`` as a whole) is refused:
    it cannot be resolved without handing the expression every secret there is.
    """
    names: set[str] = set()
    for match in _REFERENCE_RE.finditer(source):
        if match.group("bare") is not None:
            raise TaskError(
                f"expression `{source}` must name each secret it reads "
                '(secrets.NAME or secrets["NAME"])',
                non_retryable=True,
                type="InvalidSecretReference",
            )
        name = match.group("field") or match.group("key")
        if name is not None:
            names.add(name)
    return frozenset(names)


@lru_cache(maxsize=4096)
def _compile(text: str) -> _SecretString:
    try:
        template = compile_template(text)
    except ExpressionSyntaxError as exc:
        raise TaskError(str(exc), non_retryable=True, type="ExpressionSyntaxError") from None
    names: set[str] = set()
    for expression in template.expressions:
        others = expression.roots - {_ROOT}
        if others:
            raise TaskError(
                f"expression `{expression.source}` reads {', '.join(sorted(others))}; "
                "only secrets are resolved on the worker",
                non_retryable=True,
                type="ExpressionEvaluationError",
            )
        if _ROOT in expression.roots:
            names |= _secret_names(expression.source)
    return _SecretString(template, frozenset(names))


class _Resolver:
    """One :func:`resolve_secrets` call: looks each secret up once."""

    __slots__ = ("_cache", "_provider")

    def __init__(self, provider: SecretProvider) -> None:
        self._provider = provider
        self._cache: dict[str, str] = {}

    def secret(self, name: str) -> str:
        value = self._cache.get(name)
        if value is None:
            value = self._provider.get(name)
            if value is None:
                raise TaskError(
                    f"secret {name!r} is not set in this worker's environment",
                    non_retryable=True,
                    type="MissingSecret",
                )
            self._cache[name] = value
        return value

    def string(self, text: str) -> Any:
        if "${" not in text:
            return text
        compiled = _compile(text)
        context = {_ROOT: {name: self.secret(name) for name in sorted(compiled.names)}}
        try:
            return compiled.template.render(context)
        except ExpressionEvaluationError:
            # The evaluator's reason may quote the secret's value: name the source only.
            sources = ", ".join(f"`{e.source}`" for e in compiled.template.expressions)
            raise TaskError(
                f"expression {sources} failed while resolving secrets "
                "(details withheld: they may contain secret values)",
                non_retryable=True,
                type="ExpressionEvaluationError",
            ) from None

    def value(self, value: Any) -> Any:
        """``value`` with its strings rendered; unchanged containers are returned as is."""
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, dict):
            items = {key: self.value(item) for key, item in value.items()}
            changed = any(items[key] is not item for key, item in value.items())
            return items if changed else value
        if isinstance(value, list | tuple):
            rendered = [self.value(item) for item in value]
            changed = any(new is not old for new, old in zip(rendered, value, strict=True))
            return rendered if changed else value
        return value


def resolve_secrets(value: Any, provider: SecretProvider) -> Any:
    """Render the ``${ secrets.NAME }`` parts left in ``value`` (a JSON-like value).

    Every string containing ``${`` is rendered as a template (which also turns the
    orchestrator's ``$${`` escapes back into ``${``) with the context
    ``{"secrets": {NAME: value}}`` holding exactly the names its expressions reference.
    A string that is exactly one ``${ secrets.NAME }`` becomes the secret's value.
    Values without ``${`` are returned unchanged (the same objects). A missing secret
    raises a non-retryable :class:`~spane.errors.TaskError` of type ``MissingSecret``;
    no error message ever contains a secret's value.
    """
    return _Resolver(provider).value(value)
