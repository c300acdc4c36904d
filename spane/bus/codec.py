"""Bytes on the wire: JSON encoding and validated decoding of every bus message.

Encoders return UTF-8 JSON bytes (pydantic's serialiser, no intermediate ``str``);
decoders validate with the cached :class:`~pydantic.TypeAdapter` of each message type
and raise :class:`~spane.errors.InvalidMessageError` whose text says what is wrong
(``invalid task message: attempt: Field required``), which the RabbitMQ adapter puts in
the dead-letter header. No I/O here.

What JSON cannot carry faithfully is refused at the edge, by every decoder (and by
:func:`json_value_problem` for values about to be published):

- a body over its size limit: :data:`~spane.expressions.limits.DEFAULT_MAX_VALUE_BYTES`
  for a trigger body (it *is* a value), :data:`MESSAGE_BYTES_FACTOR` times that for a
  SPANE message (a few bounded values and their envelope, so that the orchestrator's own
  per-value check can still answer a too-large start or signal with a reason);
- nesting deeper than :data:`MAX_VALUE_DEPTH` (a trigger body, a value) or
  :data:`MAX_MESSAGE_DEPTH` (a SPANE message: a value inside its envelope); both stay
  below MongoDB's BSON limit of 100 levels and the JSON parser's own limit of 200;
- integers outside signed 64 bits (:data:`MIN_JSON_INT`..:data:`MAX_JSON_INT`, what
  Redis, MongoDB and most JSON readers keep exactly); non-finite numbers (``NaN``,
  ``Infinity``, or ``1e400``, which parses as infinity); invalid UTF-8, lone surrogates;
- a content type other than ``application/json``, ``application/cloudevents+json`` or
  none (:func:`check_content_type`).

Any exception a decoder meets becomes :class:`~spane.errors.InvalidMessageError`: a
message that cannot be decoded is dead-lettered, never left unsettled. The number checks
cost one regular-expression scan of the body; the body is walked only when that scan
(or its count of brackets) says it may hold something to refuse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

from spane.errors import InvalidMessageError
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
from spane.schemas.events import CLOUDEVENTS_CONTENT_TYPE, LifecycleEvent
from spane.schemas.messages import INBOX_ADAPTER, TASK_ADAPTER, InboxMessage, TaskMessage

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "CLOUDEVENTS_CONTENT_TYPE",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "JSON_CONTENT_TYPE",
    "MAX_JSON_INT",
    "MAX_MESSAGE_DEPTH",
    "MAX_VALUE_DEPTH",
    "MESSAGE_BYTES_FACTOR",
    "MIN_JSON_INT",
    "SCHEMA_HEADER",
    "SCHEMA_VERSION",
    "check_content_type",
    "check_schema",
    "decode_cancel",
    "decode_event",
    "decode_inbox",
    "decode_reply",
    "decode_task",
    "decode_trigger_body",
    "encode_cancel",
    "encode_event",
    "encode_inbox",
    "encode_reply",
    "encode_task",
    "json_value_problem",
    "message_kind",
]

JSON_CONTENT_TYPE: Final = "application/json"
SCHEMA_HEADER: Final = "spane-schema"
"""Header naming the version of the message schemas; absent on outside commands."""
SCHEMA_VERSION: Final = 1
MAX_REPORTED_ERRORS: Final = 5
ACCEPTED_CONTENT_TYPES: Final = frozenset({JSON_CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE})
"""Content types a consumer accepts; a message without one is read as JSON too."""
ACCEPTED_CHARSETS: Final = frozenset({"utf-8", "utf8"})
ACCEPTED_CONTENT_ENCODINGS: Final = frozenset({"", "identity", "utf-8", "utf8"})

MAX_VALUE_DEPTH: Final = 64
"""Deepest nesting of arrays/objects in a value (a trigger body, an input, an output);
the outermost container is level 1."""
MAX_MESSAGE_DEPTH: Final = 80
"""Deepest nesting in a SPANE message body: a value of at most :data:`MAX_VALUE_DEPTH`
levels inside its envelope (``request.json.<value>``), below BSON's 100."""
MIN_JSON_INT: Final = -(2**63)
MAX_JSON_INT: Final = 2**63 - 1
"""Integers outside signed 64 bits are refused: the stores do not keep them exactly."""
MESSAGE_BYTES_FACTOR: Final = 4
DEFAULT_MAX_MESSAGE_BYTES: Final = MESSAGE_BYTES_FACTOR * DEFAULT_MAX_VALUE_BYTES
"""Largest SPANE message body (task, inbox message, event, reply) read by default."""
MAX_REPORTED_CHARS: Final = 40
MAX_REPORTED_PARTS: Final = 8

T = TypeVar("T")

EVENT_ADAPTER: TypeAdapter[LifecycleEvent] = TypeAdapter(LifecycleEvent)
CANCEL_ADAPTER: TypeAdapter[list[str]] = TypeAdapter(list[str])
REPLY_ADAPTER: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
ANY_ADAPTER: TypeAdapter[Any] = TypeAdapter(Any)

_SUSPECT: Final = re.compile(
    rb"NaN|Infinity|\d{19}|\\u[dD][89a-fA-F]"
    rb"|(?:^|[\[:,])[ \t\n\r]*-?\d+(?:\.\d+)?[eE][+-]?\d{3}"
)
"""What may be a non-finite number, an integer past 64 bits, a surrogate escape, or a
number whose exponent has 3 digits or more (only those can overflow): when absent, no
number or string needs looking at. The exponent is looked for only where a JSON number
can start (after ``[``, ``:``, ``,`` or at the start, and blanks): hex ids in strings
(``...3e123...``) made two messages in three take the slow path before."""


def _reason(what: str, error: ValidationError) -> str:
    problems = []
    for detail in error.errors(include_url=False, include_input=False)[:MAX_REPORTED_ERRORS]:
        location = ".".join(str(part) for part in detail["loc"])
        problems.append(f"{location}: {detail['msg']}" if location else detail["msg"])
    more = error.error_count() - len(problems)
    if more > 0:
        problems.append(f"... and {more} more")
    return f"invalid {what}: " + "; ".join(problems)


def _short(value: Any) -> str:
    text = repr(value)
    if len(text) > MAX_REPORTED_CHARS:
        return f"{text[: MAX_REPORTED_CHARS // 2]}...{text[-8:]} ({len(text)} characters)"
    return text


def _where(path: tuple[Any, ...]) -> str:
    """``.items[3].name``; a deep path shows its last parts and its length."""
    if len(path) > MAX_REPORTED_PARTS:
        return f"...{_where(path[-3:])} (depth {len(path)})"
    return "".join(f"[{p}]" if isinstance(p, int) else f".{_short(p)[1:-1]}" for p in path) or "."


def _scalar_problem(item: Any, path: tuple[Any, ...]) -> str | None:
    """Why a non-container ``item`` is not a faithful JSON value, or None."""
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, str):
        if not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"string at {_where(path)} is not valid Unicode (lone surrogate)"
        return None
    if isinstance(item, int):
        if MIN_JSON_INT <= item <= MAX_JSON_INT:
            return None
        return (
            f"integer at {_where(path)} ({item.bit_length()} bits) is outside the signed "
            "64-bit range the stores keep exactly"
        )
    if isinstance(item, float):
        if math.isfinite(item):
            return None
        return f"number at {_where(path)} is {item!r}; JSON has no non-finite numbers"
    return f"value at {_where(path)} is not JSON (a {type(item).__name__})"


def json_value_problem(value: Any, *, max_depth: int = MAX_VALUE_DEPTH) -> str | None:
    """Why ``value`` cannot travel as JSON faithfully, or None when it can.

    Refuses non-finite floats, integers outside signed 64 bits, nesting deeper than
    ``max_depth`` (the outermost array/object is level 1), strings that are not valid
    Unicode (lone surrogates), non-string keys and anything that is not a JSON value.
    Iterative: a value nested 100,000 deep is refused, not a ``RecursionError``.
    """
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 0, ())]
    while stack:
        item, depth, path = stack.pop()
        if not isinstance(item, dict | list | tuple):
            problem = _scalar_problem(item, path)
            if problem is not None:
                return problem
            continue
        if depth + 1 > max_depth:
            return f"nested deeper than {max_depth} levels at {_where(path)}"
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"key {_short(key)} at {_where(path)} is not a string"
                stack.append((child, depth + 1, (*path, key)))
        else:
            stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(item))
    return None


def _screen(body: bytes, what: str, max_bytes: int, max_depth: int) -> Any:
    """Refuse what JSON cannot carry faithfully; the parsed body when it had to be parsed
    to tell (else ``...``, meaning "not parsed, nothing suspect")."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidMessageError(f"invalid {what}: body is a {type(body).__name__}, not bytes")
    if len(body) > max_bytes:
        raise InvalidMessageError(
            f"invalid {what}: body is {len(body)} bytes, over the limit of {max_bytes} bytes"
        )
    raw = bytes(body)
    if raw.count(b"[") + raw.count(b"{") <= max_depth and _SUSPECT.search(raw) is None:
        return ...
    try:
        value = from_json(raw, allow_inf_nan=True)
    except ValueError as exc:  # the parser's own limits: depth 200, 4,300 digits
        text = str(exc)
        if text.startswith("recursion limit exceeded"):
            text = f"nested deeper than {max_depth} levels ({text})"
        elif text.startswith("number out of range"):
            text = f"integer outside the signed 64-bit range the stores keep exactly ({text})"
        raise InvalidMessageError(f"invalid {what}: Invalid JSON: {text}") from None
    problem = json_value_problem(value, max_depth=max_depth)
    if problem is not None:
        raise InvalidMessageError(f"invalid {what}: {problem}")
    return value


def _decode(
    adapter: TypeAdapter[T],
    body: bytes,
    what: str,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_depth: int = MAX_MESSAGE_DEPTH,
) -> T:
    """Screen ``body`` then validate it; every failure, of any type, is an
    :class:`InvalidMessageError` naming ``what`` (never another exception)."""
    try:
        _screen(body, what, max_bytes, max_depth)
        return adapter.validate_json(body)
    except InvalidMessageError:
        raise
    except ValidationError as exc:
        raise InvalidMessageError(_reason(what, exc)) from exc
    except Exception as exc:  # RecursionError, ValueError, MemoryError... never escape
        raise InvalidMessageError(f"invalid {what}: {type(exc).__name__}: {exc}") from exc


# ------------------------------------------------------------------ tasks
def encode_task(task: TaskMessage) -> bytes:
    return TASK_ADAPTER.dump_json(task)


def decode_task(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> TaskMessage:
    """A task message for a worker pool; :class:`InvalidMessageError` if it is not one."""
    return _decode(TASK_ADAPTER, body, "task message", max_bytes)


# ------------------------------------------------------------------ inbox
def encode_inbox(message: InboxMessage) -> bytes:
    return INBOX_ADAPTER.dump_json(message)


def decode_inbox(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> InboxMessage:
    """Anything the orchestrator consumes (event with ``kind`` or command with ``command``)."""
    return _decode(INBOX_ADAPTER, body, "orchestrator message", max_bytes)


def message_kind(message: InboxMessage) -> str:
    """The discriminator of an inbox message (``task_result``, ``signal``, ...): AMQP ``type``."""
    kind = getattr(message, "kind", None) or getattr(message, "command", None)
    return str(kind)


# ----------------------------------------------------------------- events
def encode_event(event: LifecycleEvent) -> bytes:
    """The CloudEvent in structured JSON mode (content type ``application/cloudevents+json``)."""
    return EVENT_ADAPTER.dump_json(event)


def decode_event(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> LifecycleEvent:
    return _decode(EVENT_ADAPTER, body, "lifecycle event", max_bytes)


# ---------------------------------------------------------- cancellations
def encode_cancel(task_ids: Sequence[str]) -> bytes:
    """One broadcast carries every task id to cancel, as a JSON array."""
    return CANCEL_ADAPTER.dump_json(list(task_ids))


def decode_cancel(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[str]:
    return _decode(CANCEL_ADAPTER, body, "cancellation", max_bytes)


# --------------------------------------------------------------- triggers
def decode_trigger_body(body: bytes, *, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> Any:
    """A trigger body: any JSON value (or a structured CloudEvent) within the value limits
    (``max_bytes``, :data:`MAX_VALUE_DEPTH`, 64-bit integers, finite numbers)."""
    return _decode(ANY_ADAPTER, body, "trigger", max_bytes, MAX_VALUE_DEPTH)


# ---------------------------------------------------------------- replies
def encode_reply(reply: Mapping[str, Any]) -> bytes:
    """An RPC answer; values pydantic can serialise are accepted, others become strings."""
    return to_json(dict(reply), fallback=str)


def decode_reply(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
    reply = _decode(REPLY_ADAPTER, body, "reply", max_bytes)
    if not isinstance(reply.get("ok"), bool):
        raise InvalidMessageError("invalid reply: ok: a boolean is required")
    return reply


# ---------------------------------------------------------------- headers
def check_content_type(content_type: str | None, content_encoding: str | None = None) -> None:
    """Refuse a body that does not say it is (UTF-8) JSON: accepted are
    :data:`ACCEPTED_CONTENT_TYPES` (parameters allowed, ``charset`` only UTF-8) and no
    content type at all; a content encoding other than none/identity/UTF-8 (``gzip``)
    is refused too."""
    if content_type:
        media, *parameters = (part.strip() for part in str(content_type).split(";"))
        if media.lower() not in ACCEPTED_CONTENT_TYPES:
            raise InvalidMessageError(
                f"unsupported content type {_short(str(content_type))} (accepted: "
                f"{', '.join(sorted(ACCEPTED_CONTENT_TYPES))}, or none)"
            )
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            charset = value.strip().strip('"').lower()
            if name.strip().lower() == "charset" and charset not in ACCEPTED_CHARSETS:
                raise InvalidMessageError(
                    f"unsupported charset {_short(value.strip())} in content type (UTF-8 only)"
                )
    if content_encoding and str(content_encoding).strip().lower() not in (
        ACCEPTED_CONTENT_ENCODINGS
    ):
        raise InvalidMessageError(
            f"unsupported content encoding {_short(str(content_encoding))} (bodies are plain "
            "UTF-8 JSON)"
        )


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
