"""OpenTelemetry traces: one trace per execution, across every process it touches.

**Off unless configured** by the ``OTEL_*`` variables: see
:mod:`spane.observability.tracing_setup`, whose ``configure`` calls :func:`use`.

**Free when off.** This module imports no ``opentelemetry`` until tracing is turned on;
callers test the module-level flag :data:`ENABLED` (or call a helper that tests it first
and hands back a shared do-nothing context manager), so no span object is ever made.

**One execution, one trace.** An execution outlives processes, so its trace context is
data: the orchestrator opens a short ``spane.execution`` span when it begins an
execution (a child of the caller's context when the start carried one: ``Engine.start``,
an API call with a ``traceparent`` header, a trigger message with a ``traceparent``
AMQP header, a parent execution) and keeps that span's ``traceparent`` in
:attr:`~spane.schemas.state.ExecutionMeta.traceparent`. The core copies it into every
task message and child start of the execution, so every later span is its descendant:

    spane.execution (orchestrator, at start)
      publish <ns>.tasks            dispatch of one attempt (orchestrator, PRODUCER)
        process <ns>.tasks          the attempt on a worker (CONSUMER; the task's
                                    exception recorded, status ERROR when it failed)
          process <ns>.orchestrator the result applied (orchestrator, CONSUMER)
      spane.execution.finished      emitted when it finishes, from its start time
                                    (status ERROR when it failed or timed out)

Each orchestrator micro-batch is a ``spane.orchestrator.batch`` span (its own trace)
linked to the results it applied. Messages carry their context in their ``traceparent``
/ ``tracestate`` fields, never in the JSON body (the RabbitMQ bus uses AMQP headers).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, Protocol

from spane.observability.logs import SPAN_ID, TRACE_ID
from spane.schemas.commands import Command, ExecutionFinished
from spane.schemas.messages import StartExecution, TaskMessage, TaskResult
from spane.schemas.state import ExecutionMeta, ExecutionStatus

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "ENABLED",
    "TRACE_HEADERS",
    "Run",
    "context_of",
    "disable",
    "dispatching",
    "execution",
    "finished",
    "inbox_batch",
    "record_exception",
    "running",
    "shutdown",
    "starting",
    "trigger_headers",
    "trigger_received",
    "use",
]

TRACE_HEADERS: Final = ("traceparent", "tracestate")
"""W3C trace-context keys: message fields, AMQP headers and HTTP headers alike."""

ENABLED: bool = False
"""Whether this process traces; read it before calling into this module on a hot path."""

_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_namespace = "spane"
_system = "rabbitmq"
_FAILED_STATUSES: Final = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT})


class _Delivery(Protocol):
    """What the orchestrator hands over of a consumed message (a ``bus.base.Delivery``)."""

    @property
    def message(self) -> Any: ...

    @property
    def message_id(self) -> str: ...

    @property
    def headers(self) -> dict[str, Any]: ...


def use(
    provider: TracerProvider, *, namespace: str = "spane", messaging_system: str = "rabbitmq"
) -> None:
    """Trace through ``provider`` (tests give one with an in-memory exporter)."""
    global ENABLED, _tracer, _provider, _namespace, _system
    _provider = provider
    _tracer = provider.get_tracer("spane")
    _namespace = namespace
    _system = messaging_system
    ENABLED = True


def disable() -> None:
    """Stop tracing in this process (the provider is left as it is)."""
    global ENABLED, _tracer, _provider
    ENABLED = False
    _tracer = None
    _provider = None


def shutdown() -> None:
    """Export what is buffered (the SDK also does it at interpreter exit)."""
    provider = _provider
    if provider is not None:
        provider.force_flush()


def _t() -> Tracer:
    assert _tracer is not None, "tracing is not configured"
    return _tracer


def context_of(traceparent: Any, tracestate: Any = None) -> Context:
    """The context a W3C ``traceparent`` names; an empty one (a new trace) without it."""
    from opentelemetry.context import Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not traceparent:
        return Context()
    carrier = {"traceparent": _text(traceparent)}
    if tracestate:
        carrier["tracestate"] = _text(tracestate)
    return TraceContextTextMapPropagator().extract(carrier, context=Context())


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _fields(span: Span) -> dict[str, str | None]:
    """``{"traceparent": ..., "tracestate": ...}`` naming ``span``, for a message."""
    from opentelemetry.trace import set_span_in_context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=set_span_in_context(span))
    return {"traceparent": carrier.get("traceparent"), "tracestate": carrier.get("tracestate")}


def _fail(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _messaging(destination: str, operation: str, **extra: Any) -> dict[str, Any]:
    attributes = {
        "messaging.system": _system,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": f"{_namespace}.{destination}",
    }
    attributes.update({k: v for k, v in extra.items() if v is not None})
    return attributes


def _task_attributes(task: TaskMessage, operation: str) -> dict[str, Any]:
    attributes = _messaging("tasks", operation)
    attributes.update(
        {
            "messaging.message.id": task.task_id,
            "messaging.message.conversation_id": task.execution_id,
            "messaging.rabbitmq.destination.routing_key": task.pool_name,
            "spane.workflow.id": task.workflow_id,
            "spane.execution.id": task.execution_id,
            "spane.node.id": task.node_id,
            "spane.attempt": task.attempt,
            "spane.task.type": task.type,
        }
    )
    return attributes


@contextlib.contextmanager
def _spans(spans: Sequence[Span]) -> Iterator[None]:
    """End ``spans`` on the way out; an exception is recorded on each (status ERROR)."""
    try:
        yield
    except BaseException as exc:
        for span in spans:
            _fail(span, exc)
        raise
    finally:
        for span in spans:
            span.end()


# ---------------------------------------------------------------- clients
def starting(message: StartExecution) -> AbstractContextManager[StartExecution]:
    """Around sending a start (``Engine.start``): a PRODUCER span, child of the current
    context; gives the message to send, carrying that span's context."""
    if not ENABLED:
        return contextlib.nullcontext(message)
    return _starting(message)


@contextlib.contextmanager
def _starting(message: StartExecution) -> Iterator[StartExecution]:
    from opentelemetry.trace import SpanKind

    attributes = _messaging(
        "orchestrator",
        "publish",
        **{
            "messaging.message.conversation_id": message.execution_id,
            "spane.workflow.id": message.workflow_id,
            "spane.execution.id": message.execution_id,
        },
    )
    span = _t().start_span(
        f"publish {_namespace}.orchestrator", kind=SpanKind.PRODUCER, attributes=attributes
    )
    with _spans([span]):
        yield message.model_copy(update=_fields(span))


def trigger_headers(
    routing_key: str, headers: dict[str, Any] | None
) -> AbstractContextManager[dict[str, Any] | None]:
    """Around publishing a trigger event: a PRODUCER span, child of the current context;
    gives the AMQP headers to send, with its ``traceparent``."""
    if not ENABLED:
        return contextlib.nullcontext(headers)
    return _trigger_headers(routing_key, headers)


@contextlib.contextmanager
def _trigger_headers(routing_key: str, headers: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    from opentelemetry.trace import SpanKind

    attributes = _messaging(
        "triggers", "publish", **{"messaging.rabbitmq.destination.routing_key": routing_key}
    )
    span = _t().start_span(
        f"publish {_namespace}.triggers", kind=SpanKind.PRODUCER, attributes=attributes
    )
    with _spans([span]):
        fields = {k: v for k, v in _fields(span).items() if v is not None}
        yield {**(headers or {}), **fields}


# ---------------------------------------------------------- orchestrator
def trigger_received(delivery: _Delivery) -> AbstractContextManager[dict[str, str | None]]:
    """Around handling one trigger event: a CONSUMER span, child of the producer's
    ``traceparent`` header when it has one; gives the trace fields for the starts."""
    if not ENABLED:
        return contextlib.nullcontext({})
    return _trigger_received(delivery)


@contextlib.contextmanager
def _trigger_received(delivery: _Delivery) -> Iterator[dict[str, str | None]]:
    from opentelemetry.trace import SpanKind

    headers = delivery.headers
    routing_key = getattr(delivery.message, "routing_key", None)
    attributes = _messaging(
        "triggers",
        "process",
        **{
            "messaging.message.id": delivery.message_id,
            "messaging.rabbitmq.destination.routing_key": routing_key,
        },
    )
    span = _t().start_span(
        f"process {_namespace}.triggers",
        context=context_of(headers.get("traceparent"), headers.get("tracestate")),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
    with _spans([span]):
        yield _fields(span)


def execution(start: StartExecution) -> AbstractContextManager[StartExecution]:
    """Around beginning an execution: the ``spane.execution`` span (child of the start's
    context, else a new trace); gives the start carrying that span's context, which
    becomes the execution's ``traceparent``."""
    if not ENABLED:
        return contextlib.nullcontext(start)
    return _execution(start)


@contextlib.contextmanager
def _execution(start: StartExecution) -> Iterator[StartExecution]:
    from opentelemetry.trace import SpanKind

    attributes = _messaging(
        "orchestrator",
        "process",
        **{
            "messaging.message.conversation_id": start.execution_id,
            "spane.workflow.id": start.workflow_id,
            "spane.execution.id": start.execution_id,
            "spane.parent.execution.id": start.parent.execution_id if start.parent else None,
        },
    )
    span = _t().start_span(
        "spane.execution",
        context=context_of(start.traceparent, start.tracestate),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
    with _spans([span]):
        yield start.model_copy(update=_fields(span))


def finished(meta: ExecutionMeta, commands: Sequence[Command]) -> None:
    """After a decision: if it finished a traced execution, emit ``spane.execution.finished``
    from the execution's start to now, with its outcome."""
    if not ENABLED or meta.traceparent is None:
        return
    if not any(isinstance(command, ExecutionFinished) for command in commands):
        return
    from opentelemetry.trace import Status, StatusCode

    ended = meta.finished_at if meta.finished_at is not None else time.time()
    span = _t().start_span(
        "spane.execution.finished",
        context=context_of(meta.traceparent),
        start_time=int(meta.created_at * 1e9),
        attributes={
            "spane.workflow.id": meta.workflow_id,
            "spane.execution.id": meta.id,
            "spane.execution.status": str(meta.status),
        },
    )
    if meta.status in _FAILED_STATUSES:
        reason = meta.error.message if meta.error is not None else str(meta.status)
        span.set_status(Status(StatusCode.ERROR, reason))
    span.end(end_time=max(int(ended * 1e9), int(meta.created_at * 1e9)))


def inbox_batch(deliveries: Sequence[_Delivery]) -> AbstractContextManager[None]:
    """Around one orchestrator micro-batch: a ``process <ns>.orchestrator`` CONSUMER span
    per task result (child of the worker span that sent it: "the result applied"), and
    the ``spane.orchestrator.batch`` span linked to them."""
    if not ENABLED:
        return contextlib.nullcontext()
    return _inbox_batch(deliveries)


@contextlib.contextmanager
def _inbox_batch(deliveries: Sequence[_Delivery]) -> Iterator[None]:
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind

    tracer = _t()
    spans: list[Span] = []
    for delivery in deliveries:
        result = delivery.message
        if not isinstance(result, TaskResult) or not result.traceparent:
            continue
        attributes = _messaging(
            "orchestrator",
            "process",
            **{
                "messaging.message.id": delivery.message_id,
                "messaging.message.conversation_id": result.execution_id,
                "spane.execution.id": result.execution_id,
                "spane.node.id": result.node_id,
                "spane.attempt": result.attempt,
                "spane.result.ok": result.ok,
            },
        )
        spans.append(
            tracer.start_span(
                f"process {_namespace}.orchestrator",
                context=context_of(result.traceparent, result.tracestate),
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            )
        )
    batch = tracer.start_span(
        "spane.orchestrator.batch",
        context=Context(),
        links=[Link(span.get_span_context()) for span in spans],
        attributes=_messaging(
            "orchestrator", "process", **{"messaging.batch.message_count": len(deliveries)}
        ),
    )
    with _spans([*spans, batch]):
        yield


def dispatching(tasks: Sequence[TaskMessage]) -> AbstractContextManager[Sequence[TaskMessage]]:
    """Around publishing task attempts: a ``publish <ns>.tasks`` PRODUCER span per task,
    child of its execution; gives the tasks to publish, each carrying its span's context."""
    if not ENABLED:
        return contextlib.nullcontext(tasks)
    return _dispatching(tasks)


@contextlib.contextmanager
def _dispatching(tasks: Sequence[TaskMessage]) -> Iterator[Sequence[TaskMessage]]:
    from opentelemetry.trace import SpanKind

    tracer = _t()
    spans: list[Span] = []
    stamped: list[TaskMessage] = []
    for task in tasks:
        span = tracer.start_span(
            f"publish {_namespace}.tasks",
            context=context_of(task.traceparent, task.tracestate),
            kind=SpanKind.PRODUCER,
            attributes=_task_attributes(task, "publish"),
        )
        spans.append(span)
        stamped.append(task.model_copy(update=_fields(span)))
    with _spans(spans):
        yield stamped


# ---------------------------------------------------------------- workers
class Run:
    """The span of one attempt on a worker (a no-op one when tracing is off)."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def finish(self, result: TaskResult) -> TaskResult:
        """The result to report, carrying this span's context; a failure sets ERROR."""
        span = self._span
        if span is None:
            return result
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("spane.result.ok", result.ok)
        if not result.ok and result.error is not None:
            span.set_attribute("error.type", result.error.type)
            span.set_status(Status(StatusCode.ERROR, result.error.message))
        return result.model_copy(update=_fields(span))


_NO_RUN: Final = contextlib.nullcontext(Run(None))


def running(task: TaskMessage) -> AbstractContextManager[Run]:
    """Around running one attempt on a worker: a ``process <ns>.tasks`` CONSUMER span,
    child of its dispatch span and current while the task runs (user code's spans nest
    under it)."""
    if not ENABLED:
        return _NO_RUN
    return _running(task)


@contextlib.contextmanager
def _running(task: TaskMessage) -> Iterator[Run]:
    from opentelemetry.trace import SpanKind, use_span

    span = _t().start_span(
        f"process {_namespace}.tasks",
        context=context_of(task.traceparent, task.tracestate),
        kind=SpanKind.CONSUMER,
        attributes=_task_attributes(task, "process"),
    )
    ids = span.get_span_context()
    trace_token = TRACE_ID.set(format(ids.trace_id, "032x"))  # the task's log lines
    span_token = SPAN_ID.set(format(ids.span_id, "016x"))
    with use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            yield Run(span)
        except BaseException as exc:
            if type(exc).__name__ == "CancelledError":
                span.add_event("cancelled")
            else:
                _fail(span, exc)
            raise
        finally:
            SPAN_ID.reset(span_token)
            TRACE_ID.reset(trace_token)


def record_exception(exc: BaseException) -> None:
    """Record an exception a task raised on the current span, with status ERROR."""
    if not ENABLED:
        return
    from opentelemetry.trace import get_current_span

    span = get_current_span()
    if span.is_recording():
        _fail(span, exc)
