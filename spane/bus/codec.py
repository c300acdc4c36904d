"""Bytes on the wire: JSON encoding and validated decoding of every bus message.

Encoders return UTF-8 JSON bytes (pydantic's serialiser, no intermediate ``str``);
decoders validate with the cached :class:`~pydantic.TypeAdapter` of each message type
and raise :class:`~spane.errors.InvalidMessageError` whose text says what is wrong
(``invalid task message: attempt: Field required``), which the RabbitMQ adapter puts in
the dead-letter header. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from spane.errors import InvalidMessageError
from spane.schemas.events import CLOUDEVENTS_CONTENT_TYPE, LifecycleEvent
from spane.schemas.messages import INBOX_ADAPTER, TASK_ADAPTER, InboxMessage, TaskMessage

__all__ = [
    "CLOUDEVENTS_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "SCHEMA_HEADER",
    "SCHEMA_VERSION",
    "check_schema",
    "decode_cancel",
    "decode_event",
    "decode_inbox",
    "decode_reply",
    "decode_task",
    "encode_cancel",
    "encode_event",
    "encode_inbox",
    "encode_reply",
    "encode_task",
    "message_kind",
]

JSON_CONTENT_TYPE: Final = "application/json"
SCHEMA_HEADER: Final = "spane-schema"
"""Header naming the version of the message schemas; absent on outside commands."""
SCHEMA_VERSION: Final = 1
MAX_REPORTED_ERRORS: Final = 5

T = TypeVar("T")

EVENT_ADAPTER: TypeAdapter[LifecycleEvent] = TypeAdapter(LifecycleEvent)
CANCEL_ADAPTER: TypeAdapter[list[str]] = TypeAdapter(list[str])
REPLY_ADAPTER: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def _reason(what: str, error: ValidationError) -> str:
    problems = []
    for detail in error.errors(include_url=False, include_input=False)[:MAX_REPORTED_ERRORS]:
        location = ".".join(str(part) for part in detail["loc"])
        problems.append(f"{location}: {detail['msg']}" if location else detail["msg"])
    more = error.error_count() - len(problems)
    if more > 0:
        problems.append(f"... and {more} more")
    return f"invalid {what}: " + "; ".join(problems)


def _decode(adapter: TypeAdapter[T], body: bytes, what: str) -> T:
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise InvalidMessageError(_reason(what, exc)) from exc


# ------------------------------------------------------------------ tasks
def encode_task(task: TaskMessage) -> bytes:
    return TASK_ADAPTER.dump_json(task)


def decode_task(body: bytes) -> TaskMessage:
    """A task message for a worker pool; :class:`InvalidMessageError` if it is not one."""
    return _decode(TASK_ADAPTER, body, "task message")


# ------------------------------------------------------------------ inbox
def encode_inbox(message: InboxMessage) -> bytes:
    return INBOX_ADAPTER.dump_json(message)


def decode_inbox(body: bytes) -> InboxMessage:
    """Anything the orchestrator consumes (event with ``kind`` or command with ``command``)."""
    return _decode(INBOX_ADAPTER, body, "orchestrator message")


def message_kind(message: InboxMessage) -> str:
    """The discriminator of an inbox message (``task_result``, ``signal``, ...): AMQP ``type``."""
    kind = getattr(message, "kind", None) or getattr(message, "command", None)
    return str(kind)


# ----------------------------------------------------------------- events
def encode_event(event: LifecycleEvent) -> bytes:
    """The CloudEvent in structured JSON mode (content type ``application/cloudevents+json``)."""
    return EVENT_ADAPTER.dump_json(event)


def decode_event(body: bytes) -> LifecycleEvent:
    return _decode(EVENT_ADAPTER, body, "lifecycle event")


# ---------------------------------------------------------- cancellations
def encode_cancel(task_ids: Sequence[str]) -> bytes:
    """One broadcast carries every task id to cancel, as a JSON array."""
    return CANCEL_ADAPTER.dump_json(list(task_ids))


def decode_cancel(body: bytes) -> list[str]:
    return _decode(CANCEL_ADAPTER, body, "cancellation")


# ---------------------------------------------------------------- replies
def encode_reply(reply: Mapping[str, Any]) -> bytes:
    """An RPC answer; values pydantic can serialise are accepted, others become strings."""
    return to_json(dict(reply), fallback=str)


def decode_reply(body: bytes) -> dict[str, Any]:
    reply = _decode(REPLY_ADAPTER, body, "reply")
    if not isinstance(reply.get("ok"), bool):
        raise InvalidMessageError("invalid reply: ok: a boolean is required")
    return reply


# ---------------------------------------------------------------- headers
def check_schema(headers: Mapping[str, Any]) -> None:
    """Refuse a message written for a schema version this process does not know."""
    version = headers.get(SCHEMA_HEADER)
    if version is None:
        return
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    if str(version) != str(SCHEMA_VERSION):
        raise InvalidMessageError(
            f"unsupported {SCHEMA_HEADER} {version!r} (this process reads {SCHEMA_VERSION})"
        )
