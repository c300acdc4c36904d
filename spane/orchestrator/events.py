"""Event identity for idempotent application: a redelivered message maps to the same id."""

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
