"""The bus codec: every message type round-trips; garbage is refused with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import from_json

from spane.bus import codec
from spane.errors import InvalidMessageError
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
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


# ------------------------------------------------------------------ limits at the edge
DEEP = b"[" * 100_000 + b"]" * 100_000
"""Python's json raises RecursionError on this."""
HUGE_INT = b"9" * 5000
"""Python's json raises ValueError on this (int max str digits)."""


def _signal(data: bytes) -> bytes:
    return b'{"command": "signal", "execution_id": "e", "name": "n", "data": ' + data + b"}"


def _result(output: bytes) -> bytes:
    head = b'{"kind": "task_result", "task_id": "e:a:1", "execution_id": "e", "node_id": "a", '
    return head + b'"attempt": 1, "ok": true, "output": ' + output + b"}"


def _task(value: bytes) -> bytes:
    raw = TASK.model_dump_json().encode()
    return raw.replace(b'"input":{', b'"input":{"x":' + value + b",", 1)


DECODERS: list[tuple[str, Any, Any]] = [
    ("trigger", codec.decode_trigger_body, lambda v: v),
    ("inbox signal", codec.decode_inbox, _signal),
    ("task result", codec.decode_inbox, _result),
    ("task", codec.decode_task, _task),
    ("event", codec.decode_event, lambda v: b'{"specversion": "1.0", "data": ' + v + b"}"),
    ("reply", codec.decode_reply, lambda v: b'{"ok": true, "v": ' + v + b"}"),
    ("cancel", codec.decode_cancel, lambda v: b"[" + v + b"]"),
]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (DEEP, "nested deeper than"),
        (HUGE_INT, "signed 64-bit"),
        (b"9223372036854775808", "signed 64-bit"),
        (b"-9223372036854775809", "signed 64-bit"),
        (b"NaN", "non-finite"),
        (b"Infinity", "non-finite"),
        (b"-Infinity", "non-finite"),
        (b"1e400", "non-finite"),
        (b'"\xff"', "Invalid JSON"),
        (b'"\\udc00"', "Invalid JSON"),
        (b"nope", "Invalid JSON"),
    ],
    ids=lambda v: v[:12].decode("latin-1") if isinstance(v, bytes) else v,
)
@pytest.mark.parametrize(("what", "decode", "wrap"), DECODERS, ids=[d[0] for d in DECODERS])
def test_every_decoder_refuses_values_json_cannot_carry(
    what: str, decode: Any, wrap: Any, value: bytes, reason: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        decode(wrap(value))
    assert reason in str(caught.value)


@pytest.mark.parametrize(("what", "decode", "wrap"), DECODERS, ids=[d[0] for d in DECODERS])
def test_values_at_the_limits_are_accepted(what: str, decode: Any, wrap: Any) -> None:
    for value in (b"9223372036854775807", b"-9223372036854775808", b"1.7976931348623157e308"):
        if what in {"event", "cancel"}:
            continue  # schemas without a free value there
        decode(wrap(value))


def test_nesting_limits() -> None:
    def nested(depth: int) -> bytes:
        return b"[" * depth + b"]" * depth

    assert codec.MAX_VALUE_DEPTH == 64
    codec.decode_trigger_body(nested(64))
    with pytest.raises(InvalidMessageError, match="nested deeper than 64 levels"):
        codec.decode_trigger_body(nested(65))
    # a message body nests its values in an envelope: a 64-deep output fits
    codec.decode_inbox(_result(nested(64)))
    limit = codec.MAX_MESSAGE_DEPTH
    with pytest.raises(InvalidMessageError, match=f"nested deeper than {limit} levels"):
        codec.decode_inbox(_result(nested(limit)))


def test_size_limits() -> None:
    big = json.dumps("x" * (1024 * 1024 - 2)).encode()
    assert len(big) == DEFAULT_MAX_VALUE_BYTES
    assert codec.decode_trigger_body(big) == "x" * (1024 * 1024 - 2)
    with pytest.raises(InvalidMessageError, match="1048577 bytes, over the limit of 1048576"):
        codec.decode_trigger_body(big + b" ")
    with pytest.raises(InvalidMessageError, match="over the limit of 100 bytes"):
        codec.decode_trigger_body(b"[" + b"1," * 60 + b"1]", max_bytes=100)
    assert codec.DEFAULT_MAX_MESSAGE_BYTES == codec.MESSAGE_BYTES_FACTOR * DEFAULT_MAX_VALUE_BYTES
    codec.decode_inbox(_signal(big))  # a 1 MiB payload fits in a message
    with pytest.raises(InvalidMessageError, match="over the limit of 1000 bytes"):
        codec.decode_inbox(_signal(big), max_bytes=1000)


def test_suspect_text_inside_strings_is_not_refused() -> None:
    body = b'{"note": "NaN Infinity 99999999999999999999 1e400 [[[[", "n": 1e300}'
    assert codec.decode_trigger_body(body)["note"].startswith("NaN")
    assert codec.decode_trigger_body(b'"\\ud83d\\ude00"') == "\U0001f600"


@pytest.mark.parametrize(
    "body",
    [b"1e400", b"  -2.5E+999", b"[1,\n 1e309]", b'{"a":1e0400}', b'{"a": [0, -1.0e500]}'],
)
def test_an_overflowing_exponent_is_suspect_wherever_a_number_can_stand(body: bytes) -> None:
    assert codec._SUSPECT.search(body) is not None
    with pytest.raises(InvalidMessageError, match="non-finite"):
        codec.decode_trigger_body(body)


def test_hex_ids_in_strings_take_the_fast_path() -> None:
    body = b'{"task_id": "9f3e123a:b:1", "execution_id": "4e8e100c", "attempt": 1e2}'
    assert codec._SUSPECT.search(body) is None


_NUMBER = st.builds(
    lambda sign, mantissa, fraction, exponent: f"{sign}{mantissa}{fraction}e{exponent}",
    st.sampled_from(["", "-"]),
    st.integers(0, 10**6),
    st.sampled_from(["", ".5", ".000001"]),
    st.integers(-600, 600),
)
"""Raw JSON numbers with exponents, some of them past what a float holds."""


def _raw_json(value: Any) -> str:
    if isinstance(value, tuple):  # a raw number token
        return str(value[0])
    if isinstance(value, list):
        return "[" + ", ".join(_raw_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",\n".join(f"{json.dumps(k)}: {_raw_json(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, allow_nan=True)


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.tuples(_NUMBER),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_nothing_the_fast_path_lets_through_is_a_value_json_cannot_carry(value: Any) -> None:
    """The screen skips parsing a body the pattern finds nothing in: no body that would
    then be refused may pass unseen."""
    raw = _raw_json(value).encode()
    if codec._SUSPECT.search(raw) is None:
        assert codec.json_value_problem(from_json(raw, allow_inf_nan=True)) is None


def test_decoders_never_raise_anything_but_invalid_message_error() -> None:
    decoders: list[Any] = [codec.decode_task, codec.decode_inbox, codec.decode_trigger_body]
    bodies: list[Any] = [DEEP, HUGE_INT, b"\x00", b"", b"[" * 199 + b"]" * 199, None, "text"]
    for decode in decoders:
        for body in bodies:
            with pytest.raises(InvalidMessageError):
                decode(body)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/cloudevents+json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
    ],
)
def test_accepted_content_types(content_type: str | None) -> None:
    codec.check_content_type(content_type)
    codec.check_content_type(content_type, "utf-8")


@pytest.mark.parametrize(
    ("content_type", "encoding", "reason"),
    [
        ("text/plain", None, "unsupported content type 'text/plain'"),
        ("application/xml", None, "unsupported content type"),
        ("application/octet-stream", None, "unsupported content type"),
        ("application/json; charset=latin-1", None, "unsupported charset"),
        ("application/json", "gzip", "unsupported content encoding 'gzip'"),
    ],
)
def test_refused_content_types(content_type: str, encoding: str | None, reason: str) -> None:
    with pytest.raises(InvalidMessageError, match=reason):
        codec.check_content_type(content_type, encoding)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, "x", None, True, 1.5]}, None),
        ({"a": float("nan")}, "number at .a is nan"),
        ([2**63], "integer at [0] (64 bits)"),
        ({"k": "\ud800"}, "lone surrogate"),
        ({1: "x"}, "key 1 at . is not a string"),
        ({"s": {1}}, "value at .s is not JSON (a set)"),
    ],
)
def test_json_value_problem(value: Any, problem: str | None) -> None:
    found = codec.json_value_problem(value)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_json_value_problem_is_iterative() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert "nested deeper than 64 levels" in (codec.json_value_problem(deep) or "")
