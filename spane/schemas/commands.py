"""What the decision core asks the adapters to do: intent as data.

The orchestrator service executes these after the state transition that produced
them is durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import ChildFinished, StartExecution, TaskMessage
from spane.schemas.state import ErrorInfo, ExecutionStatus, Timer


@dataclass(frozen=True, slots=True)
class DispatchTask:
    """Publish one task attempt to the pool of its type."""

    task: TaskMessage


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Store a durable timer (same id replaces)."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer_id: str


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Broadcast to workers: stop this running attempt if you have it."""

    task_id: str
    execution_id: str
    node_id: str


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """Publish a lifecycle event on ``spane.events``."""

    routing_key: str
    event: LifecycleEvent
    node_level: bool


@dataclass(frozen=True, slots=True)
class StartChild:
    """Start a child execution (sub-workflow or loop iteration)."""

    start: StartExecution


@dataclass(frozen=True, slots=True)
class CancelChild:
    execution_id: str


@dataclass(frozen=True, slots=True)
class NotifyParent:
    """Tell the parent execution its child finished."""

    message: ChildFinished


@dataclass(frozen=True, slots=True)
class ExecutionFinished:
    """The execution reached a terminal status: archive it, release slots, wake waiters."""

    execution_id: str
    workflow_id: str
    status: ExecutionStatus
    output: Any
    error: ErrorInfo | None
    version: int = 0
    top_level: bool = True
    """Not a child (sub-workflow or loop iteration): ``max_executions`` applies."""


Command = (
    DispatchTask
    | ScheduleTimer
    | CancelTimer
    | CancelTask
    | EmitEvent
    | StartChild
    | CancelChild
    | NotifyParent
    | ExecutionFinished
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A control command the core refused; ``reason`` is shown to the sender."""

    reason: str


@dataclass(slots=True)
class Decision:
    """The outcome of one event: commands to run after the state is saved, or a refusal."""

    commands: list[Command]
    rejection: Rejection | None = None
