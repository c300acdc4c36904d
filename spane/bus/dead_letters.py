"""Dead letters as SPANE keeps them: what died, where it came from, why, and how to send
it back (redrive).

A :class:`DeadLetter` is built by a bus from a message of its dead-letter queue
(RabbitMQ: ``{ns}.dead-letters``; the memory bus: its own list) and handed to the
orchestrator, which stores :meth:`DeadLetter.to_record` in the
:class:`~spane.state.base.DefinitionStore`. The record is JSON (the body as UTF-8 text
when it is, else base64), so it reads the same from MongoDB, the API and the CLI;
:meth:`DeadLetter.from_record` rebuilds the entry a redrive re-publishes.

Where a message came from:

- dead-lettered by SPANE (undecodable, refused): the copy carries
  :data:`ORIGIN_EXCHANGE_HEADER` and :data:`ORIGIN_ROUTING_KEY_HEADER` (and an id,
  :data:`ID_HEADER`, so a redelivered copy is stored once);
- dead-lettered by the broker (``x-delivery-limit`` reached, rejected, expired): the
  first ``x-death`` entry names the exchange, routing keys, queue and reason.

A redrive publishes the body with its properties and headers to that exchange and
routing key, without the dead-lettering headers (:data:`DEATH_HEADERS`,
:data:`DEATH_HEADER_PREFIXES`): it arrives as a new message with its original id.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from spane.errors import InvalidMessageError

ID_HEADER = "spane-dead-letter-id"
ORIGIN_EXCHANGE_HEADER = "spane-dead-letter-exchange"
ORIGIN_ROUTING_KEY_HEADER = "spane-dead-letter-routing-key"
DEATH_HEADERS = frozenset({"x-death", "x-delivery-count", "x-last-death-reason"})
DEATH_HEADER_PREFIXES = ("x-first-death-", "x-last-death-", "spane-dead-letter-")
"""Headers a redrive drops: the message starts afresh."""
MAX_HEADER_DEPTH = 8

TEXT = "utf-8"
BASE64 = "base64"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered message, as stored and as re-published by a redrive."""

    id: str
    exchange: str
    """Where it was published before it died ("" is the default exchange)."""
    routing_key: str
    queue: str
    """The queue it died in."""
    reason: str
    dead_at: float
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    """JSON values only (see :func:`json_headers`)."""
    content_type: str | None = None
    content_encoding: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    type: str | None = None
    app_id: str | None = None
    priority: int | None = None
    count: int = 1
    """How many times it died (the broker's ``x-death`` count, else 1)."""

    def to_record(self) -> dict[str, Any]:
        """The stored form: JSON values only."""
        text, encoding = encode_body(self.body)
        return {
            "id": self.id,
            "dead_at": self.dead_at,
            "reason": self.reason,
            "queue": self.queue,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "count": self.count,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "type": self.type,
            "app_id": self.app_id,
            "priority": self.priority,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "headers": dict(self.headers),
            "body": text,
            "body_encoding": encoding,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DeadLetter:
        """Rebuild a stored entry; a record that is not one raises
        :class:`~spane.errors.InvalidMessageError` saying what is missing."""
        try:
            body = decode_body(str(record["body"]), str(record.get("body_encoding") or TEXT))
            priority = record.get("priority")
            return cls(
                id=str(record["id"]),
                exchange=str(record["exchange"]),
                routing_key=str(record.get("routing_key") or ""),
                queue=str(record.get("queue") or ""),
                reason=str(record.get("reason") or ""),
                dead_at=float(record.get("dead_at") or 0.0),
                body=body,
                headers=dict(record.get("headers") or {}),
                content_type=_optional(record.get("content_type")),
                content_encoding=_optional(record.get("content_encoding")),
                message_id=_optional(record.get("message_id")),
                correlation_id=_optional(record.get("correlation_id")),
                type=_optional(record.get("type")),
                app_id=_optional(record.get("app_id")),
                priority=int(priority) if priority is not None else None,
                count=int(record.get("count") or 1),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMessageError(f"not a dead-letter record: {exc!r}") from exc

    def redrive_headers(self) -> dict[str, Any]:
        """The headers to re-publish with: without the dead-lettering ones."""
        return {
            key: value
            for key, value in self.headers.items()
            if key not in DEATH_HEADERS and not key.startswith(DEATH_HEADER_PREFIXES)
        }

    def with_reason(self, reason: str) -> DeadLetter:
        return replace(self, reason=reason)


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def encode_body(body: bytes) -> tuple[str, str]:
    """``(text, encoding)``: the UTF-8 text of ``body``, else its base64."""
    try:
        return body.decode("utf-8"), TEXT
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), BASE64


def decode_body(text: str, encoding: str) -> bytes:
    if encoding == TEXT:
        return text.encode("utf-8")
    if encoding == BASE64:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"body is not base64: {exc}") from exc
    raise ValueError(f"unknown body encoding {encoding!r}")


def json_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """AMQP header values made JSON values: bytes as UTF-8 text (else base64), times as
    ISO 8601 text, decimals as numbers; nesting past :data:`MAX_HEADER_DEPTH` as text."""
    return {str(key): _json_value(value, 0) for key, value in (headers or {}).items()}


def _json_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= MAX_HEADER_DEPTH:
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return encode_body(bytes(value))[0]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, depth + 1) for v in value]
    return repr(value)
