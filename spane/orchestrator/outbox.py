"""The commands of one batch, grouped by how they are carried out (one publication per
kind of message, one store write for all timer changes)."""

from __future__ import annotations

from collections.abc import Sequence

from spane.schemas.commands import (
    CancelChild,
    CancelTask,
    CancelTimer,
    Command,
    DispatchTask,
    EmitEvent,
    ExecutionFinished,
    NotifyParent,
    ScheduleTimer,
    StartChild,
)
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import CancelCommand, InboxMessage, TaskMessage
from spane.schemas.state import Timer


class Outbox:
    """Commands of one batch, grouped for batched publishing."""

    def __init__(self) -> None:
        self.tasks: list[TaskMessage] = []
        self.inbox: list[InboxMessage] = []
        self.events: list[tuple[str, LifecycleEvent]] = []
        self.cancels: list[str] = []
        self.timers: dict[str, Timer | None] = {}
        """Timer id -> the timer to store, or None to cancel it (the last word wins)."""
        self.finished: list[ExecutionFinished] = []

    def add(self, commands: Sequence[Command]) -> None:
        for command in commands:
            match command:
                case DispatchTask():
                    self.tasks.append(command.task)
                case EmitEvent():
                    self.events.append((command.routing_key, command.event))
                case ScheduleTimer():
                    self.timers[command.timer.id] = command.timer
                case CancelTimer():
                    self.timers[command.timer_id] = None
                case _:
                    self._add_other(command)

    def _add_other(self, command: Command) -> None:
        match command:
            case CancelTask():
                self.cancels.append(command.task_id)
            case StartChild():
                self.inbox.append(command.start)
            case CancelChild():
                cancel = CancelCommand(execution_id=command.execution_id, reason="parent stopped")
                self.inbox.append(cancel)
            case NotifyParent():
                self.inbox.append(command.message)
            case ExecutionFinished():
                self.finished.append(command)
            case _:
                raise TypeError(f"no way to carry out {type(command).__name__}")

    @property
    def scheduled(self) -> list[Timer]:
        return [timer for timer in self.timers.values() if timer is not None]
