"""Deterministic ids: events (idempotent application), tasks, timers, child executions.

A redelivered message maps to the same event id; re-scheduling a timer replaces it;
rebuilding a decision after a crash produces the same task and child ids."""

from __future__ import annotations

from spane.schemas.messages import (
    ActivateExecution,
    AttemptLost,
    ChildFinished,
    InboxMessage,
    StartExecution,
    TaskHeartbeat,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import TimerKind


def event_id(message: InboxMessage, message_id: str) -> str:
    """Deterministic for engine-made messages; the envelope id for outside commands."""
    match message:
        case TaskResult():
            return f"result:{message.task_id}"
        case TimerFired():
            return f"timer:{message.timer.id}:{message.timer.fire_at!r}"
        case ChildFinished():
            return f"child:{message.child_execution_id}"
        case StartExecution():
            return "start"
        case ActivateExecution():
            return "activate"
        case AttemptLost():
            return f"lost:{message.execution_id}:{message.node_id}:{message.attempt}"
        case TaskHeartbeat():
            return f"heartbeat:{message.task_id}:{message_id}"
        case _:
            return f"command:{message_id}"


def timer_id(
    kind: TimerKind, execution_id: str, node_id: str | None = None, attempt: int = 0
) -> str:
    """Deterministic timer ids: re-scheduling replaces, cancelling needs no lookup."""
    return f"{kind}:{execution_id}:{node_id or ''}:{attempt}"


def task_id(execution_id: str, node_id: str, attempt: int) -> str:
    return f"{execution_id}:{node_id}:{attempt}"


def child_execution_id(execution_id: str, node_id: str, attempt: int, index: int = 0) -> str:
    suffix = f".{index}" if index else ""
    return f"{execution_id}.{node_id}.{attempt}{suffix}"
