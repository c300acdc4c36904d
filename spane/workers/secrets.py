"""Secrets for task parameters: ``${ secrets.NAME }`` resolved on the worker (DESIGN §2).

The orchestrator renders a node's parameters with ``defer={"secrets"}``: every part that
reads only ``secrets`` stays ``${ ... }`` text and every other ``${`` is escaped as
``$${``. The worker, which alone can see secrets, renders that result once more with
:func:`resolve_secrets`, looking up exactly the names the expressions reference in a
:class:`SecretProvider`. Secret values are never logged, stored or put in error messages.

Secrets come only from an explicit source, never from SPANE's own settings:

- environment variables with the prefix :data:`SECRET_ENV_PREFIX` (``secrets.TOKEN``
  reads ``$SPANE_SECRET_TOKEN``; :class:`EnvSecretProvider`, which refuses a prefix that
  could reach another variable such as ``SPANE_AMQP_URL``);
- a mounted directory holding one file per secret, Kubernetes- or Docker-style
  (``secrets.TOKEN`` reads ``<dir>/TOKEN``; :class:`DirectorySecretProvider`), named by
  the environment variable :data:`SECRETS_DIR_ENV` (``SPANE_SECRETS_DIR``);
- a provider plugged in by the application (any :class:`SecretProvider`).

:func:`default_secret_provider` builds the first two from the environment. A secret name
must match :data:`SECRET_NAME_RE` (letters, digits, ``_``, ``-``, ``.``, not starting with
``.`` or ``-``); any other name is refused with a non-retryable ``InvalidSecretName``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Protocol

from spane.errors import ExpressionEvaluationError, ExpressionSyntaxError, TaskError
from spane.expressions import Template, compile_template

__all__ = [
    "SECRETS_DIR_ENV",
    "SECRET_ENV_PREFIX",
    "ChainSecretProvider",
    "DirectorySecretProvider",
    "EnvSecretProvider",
    "MappingSecretProvider",
    "SecretProvider",
    "default_secret_provider",
    "is_secret_name",
    "resolve_secrets",
]

SECRET_ENV_PREFIX: Final = "SPANE_SECRET_"
"""``secrets.NAME`` reads the environment variable ``SPANE_SECRET_NAME``."""
SECRETS_DIR_ENV: Final = "SPANE_SECRETS_DIR"
"""Environment variable naming a directory of secret files (one file per secret)."""
SETTINGS_ENV_PREFIX: Final = "SPANE_"
"""Prefix of SPANE's own settings: never readable as secrets."""
SECRET_NAME_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
"""A secret name: what Kubernetes allows as a secret key, without a leading ``.``/``-``
(so never ``..``, a hidden file or a path)."""
ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SECRET_FILE_BYTES: Final = 1024 * 1024

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


def is_secret_name(name: str) -> bool:
    """Is ``name`` a valid secret name (:data:`SECRET_NAME_RE`)?"""
    return isinstance(name, str) and SECRET_NAME_RE.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class EnvSecretProvider:
    """Secrets from the worker's environment: ``secrets.NAME`` reads ``$<prefix>NAME``.

    The prefix is :data:`SECRET_ENV_PREFIX` unless given; an empty prefix (every
    variable), or one that could reach SPANE's settings (a prefix of ``SPANE_``, or a
    ``SPANE_...`` prefix other than ``SPANE_SECRET_...``) is refused with ``ValueError``.
    Names that cannot be part of a variable name (``api-key``) are never set here.
    """

    prefix: str = SECRET_ENV_PREFIX

    def __post_init__(self) -> None:
        upper = self.prefix.upper()
        if not self.prefix or SETTINGS_ENV_PREFIX.startswith(upper):
            raise ValueError(
                f"secret environment prefix {self.prefix!r} would expose other environment "
                f"variables (SPANE's settings among them); use e.g. {SECRET_ENV_PREFIX!r}"
            )
        if upper.startswith(SETTINGS_ENV_PREFIX) and not upper.startswith(SECRET_ENV_PREFIX):
            raise ValueError(
                f"secret environment prefix {self.prefix!r} is in the namespace of SPANE's "
                f"settings; use {SECRET_ENV_PREFIX!r} or a prefix of your own"
            )
        if ENV_NAME_RE.fullmatch(self.prefix) is None:
            raise ValueError(f"secret environment prefix {self.prefix!r} is not a variable name")

    def get(self, name: str) -> str | None:
        if not is_secret_name(name) or ENV_NAME_RE.fullmatch(name) is None:
            return None
        return os.environ.get(self.prefix + name)

    def describe(self, name: str) -> str:
        return f"${self.prefix}{name}"


class DirectorySecretProvider:
    """Secrets as files of a mounted directory: ``secrets.NAME`` is the text of
    ``<directory>/NAME`` (UTF-8, exactly as stored: a trailing newline is kept).

    Kubernetes' secret volumes work as mounted (their files are symbolic links into the
    same directory); a link leading out of the directory, a file that is not a regular
    file, or one over :data:`MAX_SECRET_FILE_BYTES` is not read.
    """

    __slots__ = ("_directory",)

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._directory = Path(directory)

    @property
    def directory(self) -> Path:
        return self._directory

    def get(self, name: str) -> str | None:
        if not is_secret_name(name):
            return None
        try:
            root = self._directory.resolve(strict=True)
            path = (root / name).resolve(strict=True)
        except OSError:
            return None
        if not path.is_relative_to(root) or not path.is_file():
            return None
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError:
            return None
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise TaskError(
                f"secret {name!r} is over {MAX_SECRET_FILE_BYTES} bytes",
                non_retryable=True,
                type="InvalidSecret",
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise TaskError(
                f"secret {name!r} is not UTF-8 text", non_retryable=True, type="InvalidSecret"
            ) from None

    def describe(self, name: str) -> str:
        return str(self._directory / name)

    def __repr__(self) -> str:
        return f"DirectorySecretProvider({str(self._directory)!r})"


class ChainSecretProvider:
    """The first of ``providers`` that has the secret."""

    __slots__ = ("providers",)

    def __init__(self, providers: Sequence[SecretProvider]) -> None:
        self.providers = tuple(providers)

    def get(self, name: str) -> str | None:
        for provider in self.providers:
            value = provider.get(name)
            if value is not None:
                return value
        return None

    def describe(self, name: str) -> str:
        return " or ".join(_describe(provider, name) for provider in self.providers)

    def __repr__(self) -> str:
        return f"ChainSecretProvider({list(self.providers)!r})"


def default_secret_provider(environ: Mapping[str, str] | None = None) -> SecretProvider:
    """The worker's secrets when none is plugged in: ``$SPANE_SECRET_<NAME>`` variables,
    then the files of ``$SPANE_SECRETS_DIR`` when that is set."""
    environ = os.environ if environ is None else environ
    providers: list[SecretProvider] = [EnvSecretProvider()]
    directory = environ.get(SECRETS_DIR_ENV)
    if directory:
        providers.append(DirectorySecretProvider(directory))
    return providers[0] if len(providers) == 1 else ChainSecretProvider(providers)


def _describe(provider: SecretProvider, name: str) -> str:
    describe = getattr(provider, "describe", None)
    return str(describe(name)) if callable(describe) else type(provider).__name__


class MappingSecretProvider:
    """Secrets from a mapping given in code (embedded mode, tests)."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = dict(mapping)

    def get(self, name: str) -> str | None:
        return self._mapping.get(name)

    def describe(self, name: str) -> str:
        return "the secrets given in code"

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
            if not is_secret_name(name):
                raise TaskError(
                    f"{name!r} is not a valid secret name (letters, digits, '_', '-', '.'; "
                    "not starting with '.' or '-')",
                    non_retryable=True,
                    type="InvalidSecretName",
                )
            value = self._provider.get(name)
            if value is None:
                raise TaskError(
                    f"secret {name!r} is not set on this worker "
                    f"(looked in {_describe(self._provider, name)})",
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
