"""Request bodies: a size bound (413) and content-type checks (415)."""

from __future__ import annotations

import json
from email.message import Message
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from spane.api.problems import problem

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _too_large(limit: int) -> str:
    return f"the request body is over the limit of {limit} bytes"


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: by their Content-Length before reading, or
    while reading when the length is not announced (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            response = problem(413, _too_large(self.max_bytes), instance=scope.get("path"))
            await response(scope, receive, send)
            return
        await self.app(scope, self._bounded(receive), send)

    def _bounded(self, receive: Receive) -> Receive:
        received = 0

        async def bounded() -> AsgiMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, _too_large(self.max_bytes))
            return message

        return bounded


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def media_type(request: Request) -> str | None:
    """The request's media type without parameters, lower case (None if absent)."""
    raw = request.headers.get("content-type")
    if not raw:
        return None
    message = Message()
    message["content-type"] = raw
    return message.get_content_type().lower()


def is_json(kind: str | None) -> bool:
    return kind is not None and (kind in JSON_TYPES or kind.endswith("+json"))


def unsupported(kind: str | None, accepted: str) -> HTTPException:
    got = f"{kind!r}" if kind else "no Content-Type"
    return HTTPException(415, f"unsupported media type: got {got}, expected {accepted}")


async def require_json(request: Request) -> None:
    """Dependency of routes with a JSON body: a non-empty body must be JSON (415)."""
    kind = media_type(request)
    if is_json(kind):
        return
    if await request.body():
        raise unsupported(kind, "application/json")


def decode_json(body: bytes) -> Any:
    """The JSON document in ``body``; a syntax error is a 422 naming where."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(422, f"the body is not valid JSON: {exc}") from None
