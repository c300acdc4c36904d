"""API keys: ``Authorization: Bearer <key>`` on every ``/v1`` call, when keys are set.

Keys come from ``SPANE_API_KEYS`` (entries separated by commas) and/or the file named
by ``SPANE_API_KEYS_FILE`` (one entry per line; blank lines and ``#`` comments
ignored). An entry is ``<key>:<scope>[+<scope>...]``; ``<key>`` may also be given
as ``sha256=<hex digest of the key>`` so the file need not hold the key itself.
Scopes:

- ``read``: ``GET`` (and ``HEAD``/``OPTIONS``) requests, the WebSocket streams;
- ``write``: every other method (registering workflows, starting executions,
  control commands);
- ``admin``: everything (``read`` and ``write`` included).

Keys are kept only as SHA-256 digests in memory and compared in constant time. No key
configured (the default, e.g. ``spane dev`` on localhost) leaves the API open.
``/v1/hooks/...`` (webhooks sign their deliveries instead), ``/livez``, ``/readyz``,
``/docs`` and ``/openapi.json`` are never behind a key. A missing or unknown key is a
401 with ``WWW-Authenticate: Bearer``, a key without the needed scope a 403, both as
problem details.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from spane.api.problems import problem
from spane.errors import ConfigurationError

PROTECTED_PREFIX = "/v1/"
OPEN_PREFIXES = ("/v1/hooks/",)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ApiScope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


def digest(key: str) -> str:
    """SHA-256 of a key, hex (what is kept, and what ``sha256=`` entries give)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _entry(text: str, where: str) -> tuple[str, frozenset[ApiScope]]:
    key, sep, scopes = text.rpartition(":")
    if not sep or not key:
        raise ConfigurationError(f"{where}: an API key entry is '<key>:<scope>[+<scope>]'")
    names = [name.strip().lower() for name in scopes.split("+")]
    unknown = [name for name in names if name not in ApiScope._value2member_map_]
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown scope {unknown[0]!r} (use read, write or admin)"
        )
    if key.startswith("sha256="):
        hashed = key.removeprefix("sha256=").lower()
        if not _HEX_DIGEST.match(hashed):
            raise ConfigurationError(f"{where}: 'sha256=' needs 64 hex digits")
    elif any(ch.isspace() or ch == "," for ch in key):
        raise ConfigurationError(f"{where}: an API key holds no spaces or commas")
    else:
        hashed = digest(key)
    return hashed, frozenset(ApiScope(name) for name in names)


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """Key digests and their scopes."""

    scopes: Mapping[str, frozenset[ApiScope]]

    @classmethod
    def parse(cls, entries: Iterable[tuple[str, str]]) -> ApiKeys:
        """From ``(entry, where it came from)`` pairs; raises ConfigurationError."""
        scopes: dict[str, frozenset[ApiScope]] = {}
        for text, where in entries:
            hashed, granted = _entry(text.strip(), where)
            scopes[hashed] = scopes.get(hashed, frozenset()) | granted
        return cls(scopes)

    @classmethod
    def from_text(cls, keys: str | None = None, file_text: str | None = None) -> ApiKeys:
        """``SPANE_API_KEYS`` (comma-separated) and a keys file's content (per line)."""
        entries: list[tuple[str, str]] = []
        for position, item in enumerate((keys or "").split(",")):
            if item.strip():
                entries.append((item, f"SPANE_API_KEYS entry {position + 1}"))
        for number, line in enumerate((file_text or "").splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                entries.append((text, f"SPANE_API_KEYS_FILE line {number}"))
        return cls.parse(entries)

    def granted(self, key: str) -> frozenset[ApiScope] | None:
        """The scopes of ``key`` (None for an unknown key)."""
        presented = digest(key)
        found: frozenset[ApiScope] | None = None
        for hashed, scopes in self.scopes.items():  # constant time per stored digest
            if hmac.compare_digest(hashed, presented):
                found = scopes
        return found

    def __bool__(self) -> bool:
        return bool(self.scopes)


def load_api_keys(keys: str | None, keys_file: str | None) -> ApiKeys | None:
    """The configured keys (None when there are none: the API is open)."""
    file_text = None
    if keys_file:
        try:
            file_text = Path(keys_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"SPANE_API_KEYS_FILE: cannot read {keys_file}: {exc}"
            ) from None
    loaded = ApiKeys.from_text(keys, file_text)
    return loaded or None


def needed_scope(method: str, kind: str) -> ApiScope:
    if kind == "websocket" or method.upper() in READ_METHODS:
        return ApiScope.READ
    return ApiScope.WRITE


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIX) and not path.startswith(OPEN_PREFIXES)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            header: str = value.decode("latin-1")
            kind, _, token = header.strip().partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class ApiKeyMiddleware:
    """Checks the bearer key of ``/v1`` requests (HTTP and WebSocket)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or not is_protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        status, detail, challenge = self._verdict(scope)
        if status == 200:
            await self.app(scope, receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail})
        else:
            response = problem(
                status,
                detail,
                slug="unauthorized" if status == 401 else "forbidden",
                instance=scope.get("path"),
                headers={"WWW-Authenticate": challenge},
            )
            await response(scope, receive, send)

    def _verdict(self, scope: Scope) -> tuple[int, str, str]:
        """(200 | 401 | 403, why, the ``WWW-Authenticate`` challenge)."""
        token = _bearer(scope)
        if token is None:
            return 401, "an API key is required (Authorization: Bearer <key>)", "Bearer"
        granted = self.keys.granted(token)
        if granted is None:
            return 401, "unknown API key", 'Bearer error="invalid_token"'
        needed = needed_scope(scope.get("method", "GET"), scope["type"])
        if ApiScope.ADMIN in granted or needed in granted:
            return 200, "", ""
        challenge = f'Bearer error="insufficient_scope", scope="{needed.value}"'
        return 403, f"this API key lacks the {needed.value!r} scope", challenge
