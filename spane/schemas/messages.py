"""Messages on the bus: task messages to workers, and everything the orchestrator consumes.

Internal events carry ``kind``; commands from outside carry ``command`` (the DESIGN §4
JSON body ``{"command": "signal", "execution_id": ..., ...}``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from spane.schemas.state import ErrorInfo, ExecutionStatus, ParentLink, Timer


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskMessage(_Message):
    """One attempt of a task node, sent to the pool of its ``type``."""

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
    | Annotated[CancelCommand, Tag("cancel")],
    Discriminator(
        _inbox_tag,
        custom_error_type="unknown_message",
        custom_error_message=(
            "message needs 'kind' (task_result, heartbeat, timer, child_finished, activate, "
            "attempt_lost) or 'command' (start, signal, pause, resume, cancel)"
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
)
"""Inbox messages about an existing execution (everything but a start)."""

INBOX_ADAPTER: TypeAdapter[InboxMessage] = TypeAdapter(InboxMessage)
TASK_ADAPTER: TypeAdapter[TaskMessage] = TypeAdapter(TaskMessage)
