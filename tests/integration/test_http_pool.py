"""The ``http`` pool against a real aiohttp server on 127.0.0.1 (no external services)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from spane.errors import TaskError
from spane.schemas.messages import TaskMessage
from spane.schemas.workflow import HttpRequest
from spane.workers.http_pool import HttpPool, parse_retry_after, perform_request
from spane.workers.secrets import MappingSecretProvider

# ----------------------------------------------------------------------------- server


async def _echo(request: web.Request) -> web.Response:
    body: Any = None
    content_type = request.content_type if request.can_read_body else None
    if content_type is not None:
        text = await request.text()
        body = await request.json() if content_type == "application/json" else text
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": [[key, value] for key, value in request.query.items()],
            "headers": dict(request.headers),
            "content_type": content_type,
            "body": body,
        }
    )


async def _text(request: web.Request) -> web.Response:
    return web.Response(text="hello, world", content_type="text/plain")


async def _bad_json(request: web.Request) -> web.Response:
    return web.Response(text="{not json", content_type="application/json")


async def _status(request: web.Request) -> web.Response:
    headers = {}
    if "retry_after" in request.query:
        headers["Retry-After"] = request.query["retry_after"]
    status = int(request.match_info["code"])
    return web.Response(status=status, text=f"status {status} body", headers=headers)


async def _slow(request: web.Request) -> web.Response:
    release: asyncio.Event = request.app[RELEASE]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(release.wait(), timeout=5)
    return web.Response(text="late")


async def _big(request: web.Request) -> web.Response:
    size = int(request.query["size"])
    return web.Response(body=b"x" * size, content_type="application/octet-stream")


RELEASE = web.AppKey("release", asyncio.Event)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app[RELEASE] = asyncio.Event()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/text", _text)
    app.router.add_get("/bad-json", _bad_json)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/big", _big)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app[RELEASE].set()
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(raise_for_status=False) as client:
        yield client


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _task(request: dict[str, Any], expect: dict[str, Any] | None = None) -> TaskMessage:
    return TaskMessage(
        task_id="exec-1:charge:1",
        execution_id="exec-1",
        workflow_id="shop",
        version=1,
        node_id="charge",
        type="http",
        attempt=1,
        request=request,
        expect=expect,
    )


async def _fail(coro: Any) -> TaskError:
    with pytest.raises(TaskError) as info:
        await coro
    return info.value


# ----------------------------------------------------------------------------- success


async def test_get_with_query_returns_json(server: str, session: aiohttp.ClientSession) -> None:
    request = {"method": "get", "url": f"{server}/echo", "query": {"q": "x y", "n": 3, "f": True}}
    out = await perform_request(session, request, None, idempotency_key="k1")
    assert out["status"] == 200
    assert "body" not in out
    assert out["json"]["method"] == "GET"
    assert out["json"]["query"] == [["q", "x y"], ["n", "3"], ["f", "true"]]
    assert out["headers"]["content-type"].startswith("application/json")
    assert all(name == name.lower() for name in out["headers"])


async def test_query_appends_to_url_query_and_repeats_lists(
    server: str, session: aiohttp.ClientSession
) -> None:
    request = {"url": f"{server}/echo?a=1", "query": {"b": [1, 2], "skip": None}}
    out = await perform_request(session, request, None, idempotency_key="k")
    assert out["json"]["query"] == [["a", "1"], ["b", "1"], ["b", "2"]]


async def test_post_json_is_echoed(server: str, session: aiohttp.ClientSession) -> None:
    spec = HttpRequest.model_validate(
        {"method": "POST", "url": f"{server}/echo", "json": {"amount": 12, "tags": ["a"]}}
    )
    request = spec.model_dump(by_alias=True, exclude_none=True)
    out = await perform_request(session, request, None, idempotency_key="k")
    assert out["json"]["method"] == "POST"
    assert out["json"]["content_type"] == "application/json"
    assert out["json"]["body"] == {"amount": 12, "tags": ["a"]}


async def test_raw_body_is_sent_as_text(server: str, session: aiohttp.ClientSession) -> None:
    request = {"method": "PUT", "url": f"{server}/echo", "body": "plain words"}
    out = await perform_request(session, request, None, idempotency_key="k")
    assert out["json"]["body"] == "plain words"
    assert out["json"]["content_type"] == "text/plain"


async def test_plain_text_response_is_body(server: str, session: aiohttp.ClientSession) -> None:
    out = await perform_request(session, {"url": f"{server}/text"}, None, idempotency_key="k")
    assert out == {
        "status": 200,
        "headers": out["headers"],
        "body": "hello, world",
    }
    assert "json" not in out


async def test_json_content_type_that_does_not_parse_is_body(
    server: str, session: aiohttp.ClientSession
) -> None:
    out = await perform_request(session, {"url": f"{server}/bad-json"}, None, idempotency_key="k")
    assert out["body"] == "{not json"
    assert "json" not in out


async def test_idempotency_key_header_is_sent(server: str, session: aiohttp.ClientSession) -> None:
    out = await perform_request(session, {"url": f"{server}/echo"}, None, idempotency_key="e:n:3")
    assert out["json"]["headers"]["Idempotency-Key"] == "e:n:3"


async def test_user_idempotency_key_wins(server: str, session: aiohttp.ClientSession) -> None:
    request = {"url": f"{server}/echo", "headers": {"idempotency-key": "mine", "X-N": 5}}
    out = await perform_request(session, request, None, idempotency_key="auto")
    headers = {name.lower(): value for name, value in out["json"]["headers"].items()}
    assert headers["idempotency-key"] == "mine"
    assert headers["x-n"] == "5"


async def test_expect_status_accepts_listed_status(
    server: str, session: aiohttp.ClientSession
) -> None:
    request = {"url": f"{server}/status/404"}
    out = await perform_request(session, request, {"status": [404]}, idempotency_key="k")
    assert out["status"] == 404
    assert out["body"] == "status 404 body"


async def test_expect_status_refuses_unlisted_2xx(
    server: str, session: aiohttp.ClientSession
) -> None:
    request = {"url": f"{server}/status/200"}
    error = await _fail(perform_request(session, request, {"status": [201]}, idempotency_key="k"))
    assert error.type == "HttpStatusError"
    assert error.non_retryable


# ----------------------------------------------------------------------------- the pool


async def test_pool_renders_secret_in_header_and_sends_task_id(server: str) -> None:
    provider = MappingSecretProvider({"TOKEN": "s3cr3t"})
    task = _task(
        {"url": f"{server}/echo", "headers": {"Authorization": "Bearer ${ secrets.TOKEN }"}}
    )
    async with HttpPool() as pool:
        out = await pool.run(task, provider)
    headers = out["json"]["headers"]
    assert headers["Authorization"] == "Bearer s3cr3t"
    assert headers["Idempotency-Key"] == "exec-1:charge:1"


async def test_pool_missing_secret_is_non_retryable(server: str) -> None:
    task = _task({"url": f"{server}/echo", "headers": {"Authorization": "${ secrets.NOPE }"}})
    async with HttpPool() as pool:
        error = await _fail(pool.run(task, MappingSecretProvider({})))
    assert error.type == "MissingSecret"
    assert error.non_retryable
    assert "NOPE" in error.message


async def test_pool_passes_expect(server: str) -> None:
    task = _task({"url": f"{server}/status/404"}, expect={"status": [404]})
    async with HttpPool() as pool:
        out = await pool.run(task, MappingSecretProvider({}))
    assert out["status"] == 404


async def test_pool_outside_context_refuses() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await HttpPool().run(_task({"url": "http://127.0.0.1/"}), MappingSecretProvider({}))


# ----------------------------------------------------------------------------- failures


async def test_404_is_non_retryable_with_details(
    server: str, session: aiohttp.ClientSession
) -> None:
    request = {"method": "GET", "url": f"{server}/status/404?token=hidden"}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert error.type == "HttpStatusError"
    assert error.non_retryable
    assert error.details == {"status": 404, "body": "status 404 body"}
    assert error.message == f"HTTP 404 from GET {server}/status/404"
    assert error.retry_after is None


async def test_503_with_retry_after_seconds_is_retryable(
    server: str, session: aiohttp.ClientSession
) -> None:
    request = {"url": f"{server}/status/503", "query": {"retry_after": "7"}}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert error.type == "HttpStatusError"
    assert not error.non_retryable
    assert error.retry_after == 7
    assert error.details == {"status": 503, "body": "status 503 body"}


async def test_503_with_retry_after_date(server: str, session: aiohttp.ClientSession) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    request = {"url": f"{server}/status/503", "query": {"retry_after": format_datetime(when, True)}}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert error.retry_after is not None
    assert 100 < error.retry_after <= 120


@pytest.mark.parametrize(
    ("status", "non_retryable"),
    [
        (400, True),
        (401, True),
        (408, False),
        (409, False),
        (425, False),
        (429, False),
        (500, False),
    ],
)
async def test_status_retryability(
    server: str, session: aiohttp.ClientSession, status: int, non_retryable: bool
) -> None:
    request = {"url": f"{server}/status/{status}"}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert error.type == "HttpStatusError"
    assert error.non_retryable is non_retryable


async def test_error_body_is_truncated_to_2_kib(
    server: str, session: aiohttp.ClientSession
) -> None:
    request = {"url": f"{server}/big", "query": {"size": 10_000}}
    error = await _fail(perform_request(session, request, {"status": [204]}, idempotency_key="k"))
    assert isinstance(error.details, dict)
    assert len(error.details["body"]) == 2048


async def test_slow_handler_times_out(server: str, session: aiohttp.ClientSession) -> None:
    request = {"url": f"{server}/slow", "timeout": 0.2}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert error.type == "Timeout"
    assert not error.non_retryable
    assert "0.2s" in error.message


async def test_default_timeout_applies(server: str, session: aiohttp.ClientSession) -> None:
    request = {"url": f"{server}/slow"}
    error = await _fail(
        perform_request(session, request, None, idempotency_key="k", default_timeout=0.2)
    )
    assert error.type == "Timeout"


async def test_connection_refused(session: aiohttp.ClientSession, closed_port: int) -> None:
    request = {"url": f"http://127.0.0.1:{closed_port}/x"}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert error.type == "HttpConnectionError"
    assert not error.non_retryable


async def test_oversized_body_names_the_limit(server: str, session: aiohttp.ClientSession) -> None:
    request = {"url": f"{server}/big", "query": {"size": 5000}}
    error = await _fail(
        perform_request(session, request, None, idempotency_key="k", max_body_bytes=4096)
    )
    assert error.non_retryable
    assert "4096 bytes" in error.message


async def test_default_body_limit_is_1_mib(server: str, session: aiohttp.ClientSession) -> None:
    limit = 1024 * 1024
    exact = await perform_request(
        session, {"url": f"{server}/big", "query": {"size": limit}}, None, idempotency_key="k"
    )
    assert len(exact["body"]) == limit
    request = {"url": f"{server}/big", "query": {"size": limit + 1}}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert str(limit) in error.message


@pytest.mark.parametrize(
    "request_",
    [
        {"url": "not a url"},
        {"url": "ftp://127.0.0.1/file"},
        {"url": "http://127.0.0.1:99999/"},
        {"url": ""},
        {"method": "GE T", "url": "http://127.0.0.1/"},
        {"method": 3, "url": "http://127.0.0.1/"},
        {"url": "http://127.0.0.1/", "timeout": "soon"},
    ],
)
async def test_invalid_request_is_non_retryable(
    session: aiohttp.ClientSession, request_: dict[str, Any]
) -> None:
    error = await _fail(perform_request(session, request_, None, idempotency_key="k"))
    assert error.type == "HttpRequestError"
    assert error.non_retryable


async def test_invalid_header_value_does_not_leak(
    session: aiohttp.ClientSession, server: str
) -> None:
    request = {"url": f"{server}/echo", "headers": {"Authorization": "Bearer s3cr3t\r\nX: y"}}
    error = await _fail(perform_request(session, request, None, idempotency_key="k"))
    assert error.type == "HttpRequestError"
    assert "s3cr3t" not in error.message
    assert error.__cause__ is None


# ----------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Wed, 01 Jan 2025 00:01:00 GMT", 60.0),
        ("Tue, 31 Dec 2024 23:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
    ],
)
def test_parse_retry_after(value: Any, expected: Any) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(value, now) == expected
