"""Messages on the bus: task messages to workers, and everything the orchestrator consumes.

Internal events carry ``kind``; commands from outside carry ``command`` (the DESIGN §4
JSON body ``{"command": "signal", "execution_id": ..., ...}``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from spane.schemas.state import ErrorInfo, ExecutionStatus, NodeState, ParentLink, Timer


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _unset(value: Any) -> bool:
    return value is None


class TaskMessage(_Message):
    """One attempt of a task node, sent to its pool: ``pool``, else the one named like
    its ``type``."""

    task_id: str
    """``<execution>:<node>:<attempt>``; also the idempotency key."""
    execution_id: str
    workflow_id: str
    version: int
    node_id: str
    type: str
    attempt: int
    input: Any = None
    input_template: bool = False
    """The input was rendered from the node's ``input:`` with ``${ secrets.* }`` deferred
    (and other ``${`` escaped): the worker renders it once more. Raw upstream data is
    never rendered, so data can never smuggle in an expression."""
    function: str | None = None
    request: dict[str, Any] | None = None
    expect: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    timeout: float | None = None
    priority: int = 0
    dispatched_at: float = 0.0
    traceparent: str | None = Field(default=None, exclude=True, repr=False)
    """W3C trace context this message was sent in (set only while tracing); never in the
    JSON body: the RabbitMQ bus carries it in the AMQP ``traceparent`` header."""
    tracestate: str | None = Field(default=None, exclude=True, repr=False)
    pool: str | None = Field(default=None, exclude_if=_unset)
    """The pool (queue) it is routed to when the node names one other than its type;
    left out of the body otherwise, so such messages stay as they always were."""

    @property
    def pool_name(self) -> str:
        """The pool this attempt is routed to: the routing key and queue of its message."""
        return self.pool or self.type


class TaskFailure(_Message):
    type: str
    message: str
    details: Any = None
    non_retryable: bool = False
    retry_after: float | None = None


class TaskResult(_Message):
    kind: Literal["task_result"] = "task_result"
    task_id: str
    execution_id: str
    node_id: str
    attempt: int
    ok: bool
    output: Any = None
    error: TaskFailure | None = None
    traceparent: str | None = Field(default=None, exclude=True, repr=False)
    """W3C trace context this message was sent in (set only while tracing); never in the
    JSON body: the RabbitMQ bus carries it in the AMQP ``traceparent`` header."""
    tracestate: str | None = Field(default=None, exclude=True, repr=False)


class TaskHeartbeat(_Message):
    kind: Literal["heartbeat"] = "heartbeat"
    task_id: str
    execution_id: str
    node_id: str
    attempt: int
    details: Any = None


class TimerFired(_Message):
    kind: Literal["timer"] = "timer"
    timer: Timer

    @property
    def execution_id(self) -> str:
        return self.timer.execution_id


class ChildFinished(_Message):
    kind: Literal["child_finished"] = "child_finished"
    execution_id: str
    """The parent execution."""
    node_id: str
    iteration: int | None = None
    child_execution_id: str
    status: ExecutionStatus
    output: Any = None
    error: ErrorInfo | None = None
    control: Literal["break", "continue"] | None = None
    """How a loop body ended, when it ended with ``break`` / ``continue``."""


class AttemptLost(_Message):
    """The worker holding a running attempt stopped renewing its claim (it died)."""

    kind: Literal["attempt_lost"] = "attempt_lost"
    execution_id: str
    node_id: str
    attempt: int
    reason: str


class ActivateExecution(_Message):
    """A PENDING execution got a ``max_executions`` slot: start its roots."""

    kind: Literal["activate"] = "activate"
    execution_id: str


class StartExecution(_Message):
    command: Literal["start"] = "start"
    execution_id: str
    workflow_id: str
    version: int | None = None
    input: Any = None
    idempotency_key: str | None = None
    priority: int = Field(default=0, ge=0, le=9)
    parent: ParentLink | None = None
    depth: int = 0
    body: str | None = None
    """For loop iterations: the node id whose inline body is the child's plan."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Extra expression context for the child (``item``, ``index``)."""
    traceparent: str | None = Field(default=None, exclude=True, repr=False)
    """W3C trace context this message was sent in (set only while tracing); never in the
    JSON body: the RabbitMQ bus carries it in the AMQP ``traceparent`` header."""
    tracestate: str | None = Field(default=None, exclude=True, repr=False)
    replay_of: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """A replay: the execution whose node states ``seed`` reuses."""
    seed: dict[str, NodeState] = Field(default_factory=dict, exclude_if=lambda v: not v)
    """A replay: settled node states taken over as they are (never run again); see
    :func:`spane.core.recovery.replay_seed`."""


class SignalCommand(_Message):
    command: Literal["signal"] = "signal"
    execution_id: str
    name: str = Field(min_length=1)
    data: Any = None


class PauseCommand(_Message):
    command: Literal["pause"] = "pause"
    execution_id: str


class ResumeCommand(_Message):
    command: Literal["resume"] = "resume"
    execution_id: str


class CancelCommand(_Message):
    command: Literal["cancel"] = "cancel"
    execution_id: str
    reason: str | None = None


class RetryCommand(_Message):
    """Run a failed, timed-out or cancelled execution again from the nodes that did not
    succeed (:mod:`spane.core.recovery`)."""

    command: Literal["retry"] = "retry"
    execution_id: str


def _inbox_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        tag = value.get("kind") or value.get("command")
        return str(tag) if tag is not None else None
    return getattr(value, "kind", None) or getattr(value, "command", None)


InboxMessage = Annotated[
    Annotated[TaskResult, Tag("task_result")]
    | Annotated[TaskHeartbeat, Tag("heartbeat")]
    | Annotated[TimerFired, Tag("timer")]
    | Annotated[ChildFinished, Tag("child_finished")]
    | Annotated[ActivateExecution, Tag("activate")]
    | Annotated[AttemptLost, Tag("attempt_lost")]
    | Annotated[StartExecution, Tag("start")]
    | Annotated[SignalCommand, Tag("signal")]
    | Annotated[PauseCommand, Tag("pause")]
    | Annotated[ResumeCommand, Tag("resume")]
    | Annotated[CancelCommand, Tag("cancel")]
    | Annotated[RetryCommand, Tag("retry")],
    Discriminator(
        _inbox_tag,
        custom_error_type="unknown_message",
        custom_error_message=(
            "message needs 'kind' (task_result, heartbeat, timer, child_finished, activate, "
            "attempt_lost) or 'command' (start, signal, pause, resume, cancel, retry)"
        ),
    ),
]
"""Anything the orchestrator consumes from its inbox."""

ControlCommand = SignalCommand | PauseCommand | ResumeCommand | CancelCommand
ExecutionMessage = (
    TaskResult
    | TaskHeartbeat
    | TimerFired
    | ChildFinished
    | ActivateExecution
    | AttemptLost
    | SignalCommand
    | PauseCommand
    | ResumeCommand
    | CancelCommand
    | RetryCommand
)
"""Inbox messages about an existing execution (everything but a start)."""

INBOX_ADAPTER: TypeAdapter[InboxMessage] = TypeAdapter(InboxMessage)
TASK_ADAPTER: TypeAdapter[TaskMessage] = TypeAdapter(TaskMessage)
