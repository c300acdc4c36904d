"""The bus codec: every message type round-trips; garbage is refused with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spane.bus import codec
from spane.errors import InvalidMessageError
from spane.schemas.events import execution_event, node_event
from spane.schemas.messages import (
    CancelCommand,
    ChildFinished,
    InboxMessage,
    PauseCommand,
    ResumeCommand,
    SignalCommand,
    StartExecution,
    TaskFailure,
    TaskHeartbeat,
    TaskMessage,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import ErrorInfo, ExecutionStatus, ParentLink, Timer, TimerKind

TASK = TaskMessage(
    task_id="e1:charge:2",
    execution_id="e1",
    workflow_id="orders",
    version=3,
    node_id="charge",
    type="http",
    attempt=2,
    input={"total": 12.5, "items": [1, "two", None], "ü": "✓"},
    request={"method": "POST", "url": "https://pay.example/charges"},
    timeout=30.0,
    priority=7,
    dispatched_at=1_700_000_000.25,
)

INBOX: list[InboxMessage] = [
    TaskResult(task_id="e1:a:1", execution_id="e1", node_id="a", attempt=1, ok=True, output=[1]),
    TaskResult(
        task_id="e1:a:2",
        execution_id="e1",
        node_id="a",
        attempt=2,
        ok=False,
        error=TaskFailure(type="ValueError", message="bad", non_retryable=True, retry_after=1.5),
    ),
    TaskHeartbeat(task_id="e1:a:1", execution_id="e1", node_id="a", attempt=1, details={"p": 1}),
    TimerFired(
        timer=Timer(id="t1", execution_id="e1", kind=TimerKind.RETRY, fire_at=5.5, node_id="a")
    ),
    ChildFinished(
        execution_id="e1",
        node_id="loop",
        iteration=3,
        child_execution_id="e1.c3",
        status=ExecutionStatus.FAILED,
        error=ErrorInfo(type="Boom", message="no"),
        control="break",
    ),
    StartExecution(
        execution_id="e2",
        workflow_id="orders",
        version=1,
        input={"total": 1},
        idempotency_key="k",
        priority=5,
        parent=ParentLink(execution_id="e1", node_id="sub"),
        depth=1,
        context={"item": 1, "index": 0},
    ),
    SignalCommand(execution_id="e1", name="approval", data={"ok": True}),
    PauseCommand(execution_id="e1"),
    ResumeCommand(execution_id="e1"),
    CancelCommand(execution_id="e1", reason="user"),
]


def test_task_round_trip() -> None:
    body = codec.encode_task(TASK)
    assert isinstance(body, bytes)
    assert codec.decode_task(body) == TASK


@pytest.mark.parametrize("message", INBOX, ids=lambda m: codec.message_kind(m))
def test_inbox_round_trip(message: InboxMessage) -> None:
    decoded = codec.decode_inbox(codec.encode_inbox(message))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize(
    ("message", "kind"),
    [(INBOX[0], "task_result"), (INBOX[3], "timer"), (INBOX[5], "start"), (INBOX[9], "cancel")],
)
def test_message_kind(message: InboxMessage, kind: str) -> None:
    assert codec.message_kind(message) == kind


def test_outside_command_decodes_from_plain_json() -> None:
    body = json.dumps({"command": "signal", "execution_id": "e1", "name": "go", "data": [1]})
    assert codec.decode_inbox(body.encode()) == SignalCommand(
        execution_id="e1", name="go", data=[1]
    )


@pytest.mark.parametrize(
    "pair",
    [
        execution_event(
            execution_id="e1", workflow_id="w", version=1, status="failed", now=1_700_000_000.0
        ),
        node_event(
            execution_id="e1",
            workflow_id="w",
            version=1,
            node_id="n",
            attempt=2,
            status="retrying",
            now=1_700_000_000.0,
            extra={"error": {"type": "X", "message": "y"}},
        ),
    ],
)
def test_event_round_trip_is_a_structured_cloudevent(pair: Any) -> None:
    _, event = pair
    body = codec.encode_event(event)
    raw = json.loads(body)
    assert raw["specversion"] == "1.0"
    assert raw["datacontenttype"] == "application/json"
    assert raw["id"] == event.id
    assert codec.decode_event(body) == event


def test_cancel_round_trip() -> None:
    ids = ["e1:a:1", "e2:b:3"]
    assert codec.decode_cancel(codec.encode_cancel(ids)) == ids
    assert codec.decode_cancel(codec.encode_cancel(())) == []


def test_reply_round_trip() -> None:
    reply = {"ok": True, "execution_id": "e1", "duplicate": True}
    assert codec.decode_reply(codec.encode_reply(reply)) == reply
    assert codec.decode_reply(codec.encode_reply({"ok": False, "error": "no"}))["ok"] is False


def test_reply_with_unusual_values_is_still_json() -> None:
    body = codec.encode_reply({"ok": True, "status": ExecutionStatus.RUNNING, "when": object})
    decoded = codec.decode_reply(body)
    assert decoded["status"] == "running"
    assert isinstance(decoded["when"], str)


@pytest.mark.parametrize(
    ("decode", "body", "expected"),
    [
        (codec.decode_task, b"\xff\xfe not json", "invalid task message: Invalid JSON"),
        (codec.decode_task, b"", "invalid task message: Invalid JSON"),
        (codec.decode_task, b"[1, 2]", "invalid task message: Input should be an object"),
        (codec.decode_task, b'{"task_id": "x"}', "execution_id: Field required"),
        (
            codec.decode_task,
            json.dumps({**TASK.model_dump(), "attempt": "second"}).encode(),
            "attempt: Input should be a valid integer",
        ),
        (
            codec.decode_task,
            json.dumps({**TASK.model_dump(), "surprise": 1}).encode(),
            "surprise: Extra inputs are not permitted",
        ),
        (codec.decode_inbox, b"{not json}", "invalid orchestrator message: Invalid JSON"),
        (codec.decode_inbox, b'{"hello": 1}', "message needs 'kind'"),
        (codec.decode_inbox, b'{"kind": "nope"}', "message needs 'kind'"),
        (codec.decode_inbox, b'{"command": "signal", "execution_id": "e"}', "name: Field"),
        (codec.decode_event, b'{"specversion": "0.3"}', "invalid lifecycle event: specversion"),
        (codec.decode_cancel, b'{"ids": []}', "invalid cancellation: Input should be"),
        (codec.decode_cancel, b"[1, 2]", "invalid cancellation: 0: Input should be"),
        (codec.decode_reply, b'"ok"', "invalid reply"),
        (codec.decode_reply, b'{"error": "x"}', "invalid reply: ok"),
    ],
)
def test_garbage_is_refused_with_a_reason(decode: Any, body: bytes, expected: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        decode(body)
    assert expected in str(caught.value)


def test_long_error_lists_are_truncated() -> None:
    with pytest.raises(InvalidMessageError, match=r"\.\.\. and \d+ more"):
        codec.decode_task(b"{}")


@pytest.mark.parametrize("headers", [{}, {"spane-schema": 1}, {"spane-schema": b"1"}, {"x": 2}])
def test_known_schema_versions_pass(headers: dict[str, Any]) -> None:
    codec.check_schema(headers)


def test_unknown_schema_version_is_refused() -> None:
    with pytest.raises(InvalidMessageError, match="unsupported spane-schema 2"):
        codec.check_schema({"spane-schema": 2})
