"""The built-in ``http`` pool: one outbound HTTP call per task (DESIGN §2 "Node types").

:func:`perform_request` sends a rendered ``request`` {method, url, headers, query,
json/body, timeout} with an ``Idempotency-Key`` header and returns
``{"status", "headers", "json" | "body"}``. Failures are :class:`~spane.errors.TaskError`
typed so that the retry policy can tell them apart:

==================== ============================================= ==============
type                 when                                          retried
==================== ============================================= ==============
HttpStatusError      status not in ``expect.status`` (default 2xx) 5xx, 408, 409,
                                                                   425, 429 only
HttpConnectionError  connection refused / reset, broken body       yes
Timeout              no complete answer within the timeout         yes
HttpRequestError     invalid method, URL, header, timeout, body    no
ResponseTooLarge     the body exceeds ``max_body_bytes``           no
==================== ============================================= ==============

Error messages name the method and the URL without its query, fragment or user info
(where secrets tend to live), never header values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from spane.errors import TaskError
from spane.schemas.durations import parse_duration
from spane.schemas.messages import TaskMessage
from spane.workers.secrets import SecretProvider, resolve_secrets

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BODY_BYTES",
    "HttpPool",
    "parse_retry_after",
    "perform_request",
]

DEFAULT_TIMEOUT = 30.0
"""Seconds a request may take when neither the request nor the task sets a timeout."""
MAX_BODY_BYTES = 1024 * 1024
"""Largest response body accepted (after decompression)."""
ERROR_BODY_CHARS = 2048
"""How much of an unexpected response's body is kept in the error's details."""
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
"""Client-error statuses worth retrying (timeout, conflict, too early, rate limited)."""

_METHOD_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 9110 token
_CHUNK = 64 * 1024


def _request_error(message: str) -> TaskError:
    return TaskError(message, non_retryable=True, type="HttpRequestError")


def _safe_url(url: URL) -> str:
    """The URL as it may appear in messages: no user info, query or fragment."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _query(query: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters as text; a list repeats its key, ``None`` leaves it out."""
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        items = value if isinstance(value, list | tuple) else [value]
        pairs += [(str(key), _text(item)) for item in items if item is not None]
    return pairs


def _headers(headers: Mapping[str, Any], idempotency_key: str) -> dict[str, str]:
    result = {str(name): _text(value) for name, value in headers.items() if value is not None}
    if not any(name.lower() == "idempotency-key" for name in result):
        result["Idempotency-Key"] = idempotency_key
    return result


def _method(request: Mapping[str, Any]) -> str:
    method = request.get("method", "GET")
    if not isinstance(method, str) or not _METHOD_RE.match(method):
        raise _request_error(f"invalid HTTP method {method!r}")
    return method.upper()


def _url(request: Mapping[str, Any]) -> URL:
    raw = request.get("url")
    if not isinstance(raw, str) or not raw:
        raise _request_error("the request has no URL")
    try:
        url = URL(raw)
    except ValueError:
        raise _request_error("invalid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _request_error("invalid URL: it must be absolute, http:// or https://")
    return url


def _timeout(request: Mapping[str, Any], default: float | None) -> float | None:
    value = request.get("timeout")
    if value is None:
        return default
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise _request_error(f"invalid timeout: {exc}") from None
    return seconds


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP-date);
    ``None`` when absent or unreadable. A date in the past gives ``0``."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _status_error(
    status: int, method: str, url: URL, text: str, retry_after: str | None
) -> TaskError:
    retryable = status >= 500 or status in RETRYABLE_4XX
    return TaskError(
        f"HTTP {status} from {method} {_safe_url(url)}",
        type="HttpStatusError",
        details={"status": status, "body": text[:ERROR_BODY_CHARS]},
        non_retryable=not retryable,
        retry_after=parse_retry_after(retry_after, datetime.now(UTC)),
    )


async def _read_body(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body, up to ``limit`` bytes, and whether there was more than that."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _decode(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", errors="replace")


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _output(response: aiohttp.ClientResponse, text: str) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    output: dict[str, Any] = {"status": response.status, "headers": headers}
    if _is_json(response.content_type):
        try:
            output["json"] = json.loads(text)
        except ValueError:
            pass
        else:
            return output
    output["body"] = text
    return output


async def _exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    options: dict[str, Any],
    accepted: frozenset[int],
    max_body_bytes: int,
) -> dict[str, Any]:
    async with session.request(method, url, **options) as response:
        data, too_large = await _read_body(response, max_body_bytes)
        text = _decode(data, response.charset)
        ok = response.status in accepted if accepted else 200 <= response.status < 300
        if not ok:
            retry_after = response.headers.get("Retry-After")
            raise _status_error(response.status, method, url, text, retry_after)
        if too_large:
            raise TaskError(
                f"the response body of {method} {_safe_url(url)} exceeds the limit of "
                f"{max_body_bytes} bytes",
                non_retryable=True,
                type="ResponseTooLarge",
                details={"status": response.status, "limit": max_body_bytes},
            )
        return _output(response, text)


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.strerror or exc.os_error})"
    return type(exc).__name__


def _accepted(expect: Mapping[str, Any] | None) -> frozenset[int]:
    statuses = (expect or {}).get("status") or ()
    try:
        return frozenset(int(status) for status in statuses)
    except (TypeError, ValueError):
        raise _request_error("expect.status must be a list of status codes") from None


async def perform_request(
    session: aiohttp.ClientSession,
    request: Mapping[str, Any],
    expect: Mapping[str, Any] | None,
    *,
    idempotency_key: str,
    default_timeout: float | None = DEFAULT_TIMEOUT,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> dict[str, Any]:
    """Send ``request`` (an ``HttpRequest`` dumped by alias, rendered) and return
    ``{"status": int, "headers": {lower-case name: value}, "json" | "body": ...}``.

    ``json`` is present when the response is JSON (``application/json`` or ``*+json``)
    and parses, ``body`` (the text) otherwise. The status must be in ``expect["status"]``
    when that is given and non-empty, else any 2xx. Every failure is a
    :class:`~spane.errors.TaskError` (see the module docstring for the types).
    """
    method, url = _method(request), _url(request)
    accepted = _accepted(expect)
    timeout = _timeout(request, default_timeout)
    options: dict[str, Any] = {
        "headers": _headers(request.get("headers") or {}, idempotency_key),
        "params": _query(request.get("query") or {}),
        "timeout": aiohttp.ClientTimeout(total=timeout),
    }
    if "json" in request:
        options["json"] = request["json"]
    elif request.get("body") is not None:
        options["data"] = _text(request["body"])
    try:
        return await _exchange(session, method, url, options, accepted, max_body_bytes)
    except TimeoutError:
        after = f" after {timeout:g}s" if timeout is not None else ""
        raise TaskError(f"{method} {_safe_url(url)} timed out{after}", type="Timeout") from None
    except aiohttp.TooManyRedirects:
        raise _request_error(f"too many redirects from {method} {_safe_url(url)}") from None
    except (aiohttp.InvalidURL, ValueError, TypeError) as exc:
        # The reason may quote a header value (a secret): give the kind of problem only.
        raise _request_error(
            f"cannot send {method} {_safe_url(url)}: {type(exc).__name__}"
        ) from None
    except aiohttp.ClientError as exc:
        raise TaskError(
            f"{method} {_safe_url(url)} failed: {_describe(exc)}", type="HttpConnectionError"
        ) from None


class HttpPool:
    """Runs ``http`` tasks over one pooled :class:`aiohttp.ClientSession`.

    Use it as ``async with HttpPool() as pool: output = await pool.run(task, provider)``.
    A request without its own ``timeout`` gets the task's timeout, else
    ``default_timeout``; ``limit`` caps the open connections (all hosts together).
    """

    def __init__(
        self,
        *,
        default_timeout: float | None = DEFAULT_TIMEOUT,
        max_body_bytes: int = MAX_BODY_BYTES,
        limit: int = 100,
    ) -> None:
        self._default_timeout = default_timeout
        self._max_body_bytes = max_body_bytes
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session; only inside ``async with``."""
        if self._session is None:
            raise RuntimeError("HttpPool is not open: use 'async with HttpPool() as pool'")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._limit),
            raise_for_status=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def run(self, task: TaskMessage, provider: SecretProvider) -> dict[str, Any]:
        """Perform ``task.request`` with its secrets resolved from ``provider``."""
        if task.request is None:
            raise _request_error(f"task {task.task_id} has no request")
        request = resolve_secrets(task.request, provider)
        default = task.timeout if task.timeout is not None else self._default_timeout
        return await perform_request(
            self.session,
            request,
            task.expect,
            idempotency_key=task.task_id,
            default_timeout=default,
            max_body_bytes=self._max_body_bytes,
        )
