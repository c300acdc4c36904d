"""Building the AMQP messages the RabbitMQ bus publishes: properties, routing, bodies.

Pure functions over the topology and SPANE's messages; :class:`~spane.bus.rabbit.RabbitBus`
publishes what they build (:mod:`spane.bus.rabbit_publish`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aio_pika.abc import AbstractIncomingMessage
from aiormq import spec
from pydantic import BaseModel

from spane.bus.base import Reply
from spane.bus.codec import (
    CLOUDEVENTS_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    MAX_VALUE_DEPTH,
    SCHEMA_HEADER,
    SCHEMA_VERSION,
    encode_cancel,
    encode_event,
    encode_inbox,
    encode_reply,
    encode_task,
    json_value_problem,
    message_kind,
)
from spane.bus.rabbit_publish import PERSISTENT, Outgoing
from spane.bus.topology import Topology
from spane.errors import InvalidMessageError
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import (
    InboxMessage,
    StartExecution,
    TaskHeartbeat,
    TaskMessage,
    TaskResult,
)

ORCHESTRATOR_ROUTING_KEY = ""
TRACE_HEADERS = ("traceparent", "tracestate")
"""A message's W3C trace context (its fields of these names) travels in these headers."""
M = TypeVar("M", bound=BaseModel)


def _with_trace(props: spec.Basic.Properties, message: object) -> spec.Basic.Properties:
    """Copy the message's trace context (set only while tracing) into its headers."""
    if getattr(message, "traceparent", None) is not None and props.headers is not None:
        for name in TRACE_HEADERS:
            value = getattr(message, name, None)
            if value is not None:
                props.headers[name] = value
    return props


def traced_decoder(decode: Callable[[bytes], M]) -> Callable[[AbstractIncomingMessage], M]:
    """Decode the body; a ``traceparent`` header goes back into the message's fields."""

    def decoder(message: AbstractIncomingMessage) -> M:
        value = decode(message.body)
        headers = message.headers
        if headers and headers.get("traceparent") and "traceparent" in type(value).model_fields:
            trace = {name: _text(headers[name]) for name in TRACE_HEADERS if headers.get(name)}
            value = value.model_copy(update=trace)
        return value

    return decoder


def results_only(
    decode: Callable[[AbstractIncomingMessage], M], results_exchange: str
) -> Callable[[AbstractIncomingMessage], M]:
    """Refuse (dead-letter) anything but a task result or heartbeat that arrived through
    the results exchange: workers may publish there and nowhere else, so a worker cannot
    send commands (docs/operations.md, "Trust model")."""

    def decoder(message: AbstractIncomingMessage) -> M:
        value = decode(message)
        if message.exchange == results_exchange and not isinstance(
            value, TaskResult | TaskHeartbeat
        ):
            kind = type(value).__name__
            raise InvalidMessageError(
                f"a {kind} arrived through {results_exchange}, which takes only task "
                "results and heartbeats (workers cannot send commands)"
            )
        return value

    return decoder


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def properties(
    *,
    kind: str,
    message_id: str,
    correlation_id: str | None,
    content_type: str = JSON_CONTENT_TYPE,
    priority: int | None = None,
    reply_to: str | None = None,
) -> spec.Basic.Properties:
    """Persistent, typed, with the schema version in a header."""
    return spec.Basic.Properties(
        content_type=content_type,
        delivery_mode=PERSISTENT,
        message_id=message_id,
        correlation_id=correlation_id,
        message_type=kind,
        priority=priority,
        reply_to=reply_to,
        app_id="spane",
        headers={SCHEMA_HEADER: SCHEMA_VERSION},
    )


def task_outgoing(topology: Topology, task: TaskMessage) -> Outgoing:
    """A task attempt to ``{ns}.tasks`` routed by its pool (mandatory: a missing queue
    is an error, not a loss). The task id is the message id."""
    props = properties(
        kind="task",
        message_id=task.task_id,
        correlation_id=task.execution_id,
        priority=task.priority,
    )
    _with_trace(props, task)
    return Outgoing(
        topology.tasks_exchange, task.pool_name, encode_task(task), props, mandatory=True
    )


def inbox_outgoing(
    topology: Topology,
    message: InboxMessage,
    message_id: str,
    *,
    priority: int | None = None,
    reply_to: str | None = None,
    correlation_id: str | None = None,
    exchange: str | None = None,
) -> Outgoing:
    """A message for the orchestrator inbox (a start keeps its priority), through the
    orchestrator exchange, or ``exchange`` (workers: the results exchange)."""
    if priority is None and isinstance(message, StartExecution):
        priority = message.priority
    props = properties(
        kind=message_kind(message),
        message_id=message_id,
        correlation_id=correlation_id or message.execution_id,
        priority=priority,
        reply_to=reply_to,
    )
    _with_trace(props, message)
    return Outgoing(
        exchange or topology.orchestrator_exchange,
        ORCHESTRATOR_ROUTING_KEY,
        encode_inbox(message),
        props,
        mandatory=True,
    )


def event_outgoing(
    topology: Topology, routing_key: str, event: LifecycleEvent, *, mandatory: bool = False
) -> Outgoing:
    """A CloudEvent in structured mode; nobody subscribed is not an error (``mandatory``:
    the broker returns it then, to say so)."""
    props = properties(
        kind=event.type,
        message_id=event.id,
        correlation_id=event.subject,
        content_type=CLOUDEVENTS_CONTENT_TYPE,
    )
    return Outgoing(topology.events_exchange, routing_key, encode_event(event), props, mandatory)


def cancel_outgoing(topology: Topology, task_ids: Sequence[str], message_id: str) -> Outgoing:
    """One fanout message carrying every cancelled task id."""
    props = properties(kind="cancel", message_id=message_id, correlation_id=None)
    return Outgoing(topology.cancellations_exchange, "", encode_cancel(task_ids), props, False)


def reply_outgoing(reply_to: str, correlation_id: str | None, value: Reply) -> Outgoing:
    """An RPC answer to ``reply_to`` through the default exchange."""
    props = spec.Basic.Properties(
        content_type=JSON_CONTENT_TYPE,
        correlation_id=correlation_id,
        message_type="reply",
        app_id="spane",
        headers={SCHEMA_HEADER: SCHEMA_VERSION},
    )
    return Outgoing("", reply_to, encode_reply(value), props, False)


def trigger_outgoing(
    topology: Topology,
    routing_key: str,
    body: Any,
    message_id: str,
    *,
    max_value_bytes: int,
    headers: dict[str, Any] | None = None,
) -> Outgoing:
    """A trigger event; CloudEvents (with ``specversion``) keep their content type. A body
    JSON cannot carry faithfully raises :class:`~spane.errors.InvalidMessageError`."""
    encoded = trigger_body(body, max_value_bytes)
    is_cloud_event = isinstance(body, dict) and "specversion" in body
    props = properties(
        kind="trigger",
        message_id=message_id,
        correlation_id=None,
        content_type=CLOUDEVENTS_CONTENT_TYPE if is_cloud_event else JSON_CONTENT_TYPE,
    )
    props.headers = {**(props.headers or {}), **(headers or {})}
    return Outgoing(topology.triggers_exchange, routing_key, encoded, props, True)


def trigger_body(body: Any, max_value_bytes: int) -> bytes:
    problem = json_value_problem(body, max_depth=MAX_VALUE_DEPTH)
    if problem is not None:
        raise InvalidMessageError(f"invalid trigger: {problem}")
    encoded = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if len(encoded) > max_value_bytes:
        raise InvalidMessageError(
            f"invalid trigger: body is {len(encoded)} bytes, over the limit of "
            f"{max_value_bytes} bytes"
        )
    return encoded
