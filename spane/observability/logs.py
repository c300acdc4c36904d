"""Structured logs: one JSON object per line, with what the record is about.

``SPANE_LOG_FORMAT``: ``json``, ``text`` or ``auto`` (the default: text when the stream
is a terminal, JSON otherwise — a person at a terminal reads text, a log collector
parses JSON). A JSON line holds ``time`` (RFC 3339, UTC), ``level``, ``logger``,
``message``, and ``execution_id``, ``node_id``, ``attempt``, ``trace_id``, ``span_id``
whenever they are known, plus ``exception`` (the formatted traceback) for a record
logged with one.

They are known from context variables the orchestrator sets per execution group and the
worker per task (:func:`log_context`), or from the record's own attributes (a task's
``ctx.logger`` passes them as ``extra``). ``trace_id`` and ``span_id`` stay empty until
tracing sets them (:data:`TRACE_ID`, :data:`SPAN_ID`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

__all__ = [
    "ATTEMPT",
    "CONTEXT_FIELDS",
    "EXECUTION_ID",
    "NODE_ID",
    "SPAN_ID",
    "TEXT_FORMAT",
    "TRACEBACK_LIMIT",
    "TRACE_ID",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
    "log_context",
    "trimmed_traceback",
]

LogFormat = Literal["auto", "json", "text"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TRACEBACK_LIMIT = 4096
"""Characters of a task's traceback kept in its error details (the last ones)."""

EXECUTION_ID: ContextVar[str | None] = ContextVar("spane_execution_id", default=None)
NODE_ID: ContextVar[str | None] = ContextVar("spane_node_id", default=None)
ATTEMPT: ContextVar[int | None] = ContextVar("spane_attempt", default=None)
TRACE_ID: ContextVar[str | None] = ContextVar("spane_trace_id", default=None)
SPAN_ID: ContextVar[str | None] = ContextVar("spane_span_id", default=None)

_VARS: dict[str, ContextVar[Any]] = {
    "execution_id": EXECUTION_ID,
    "node_id": NODE_ID,
    "attempt": ATTEMPT,
    "trace_id": TRACE_ID,
    "span_id": SPAN_ID,
}
CONTEXT_FIELDS = tuple(_VARS)


@contextlib.contextmanager
def log_context(
    execution_id: str | None = None,
    node_id: str | None = None,
    attempt: int | None = None,
) -> Iterator[None]:
    """Records logged inside carry these fields (the previous values come back after)."""
    execution_token = EXECUTION_ID.set(execution_id)
    node_token = NODE_ID.set(node_id)
    attempt_token = ATTEMPT.set(attempt)
    try:
        yield
    finally:
        ATTEMPT.reset(attempt_token)
        NODE_ID.reset(node_token)
        EXECUTION_ID.reset(execution_token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _VARS.items():
            value = getattr(record, name, None)
            if value is None:
                value = var.get()
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _wants_json(log_format: LogFormat, stream: TextIO) -> bool:
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return log_format == "json"


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "auto", stream: TextIO | None = None
) -> logging.Handler:
    """Send every record at ``level`` and above to ``stream`` (stderr) in the chosen
    format, replacing the root logger's handlers; returns the handler."""
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    if _wants_json(log_format, stream):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def trimmed_traceback(exc: BaseException, limit: int = TRACEBACK_LIMIT) -> str:
    """``exc``'s formatted traceback, its last ``limit`` characters (the frames nearest
    the raise and the message matter most)."""
    text = "".join(traceback.format_exception(exc))
    if len(text) <= limit:
        return text
    return "..." + text[-(limit - 3) :]
