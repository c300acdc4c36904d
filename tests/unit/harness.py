"""A synchronous driver for the pure decision core: simulated workers and a fake clock.

It feeds ``begin``/``decide`` the messages the adapters would (task results, timer
firings) and records every command, so unit tests can assert on whole executions
without any I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from spane.compiler.compile import compile_plan
from spane.core.decisions import begin, decide
from spane.schemas.commands import (
    CancelTimer,
    Command,
    DispatchTask,
    EmitEvent,
    ExecutionFinished,
    ScheduleTimer,
)
from spane.schemas.messages import (
    InboxMessage,
    StartExecution,
    TaskFailure,
    TaskMessage,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import ExecutionMeta, Timer
from spane.schemas.view import ExecutionView
from spane.schemas.workflow import WorkflowSpec

Behaviour = Callable[[TaskMessage], tuple[bool, Any]]
"""A simulated task: returns (ok, output) or (False, TaskFailure)."""


def succeed_all(task: TaskMessage) -> tuple[bool, Any]:
    return True, {"node": task.node_id}


class Harness:
    def __init__(self, spec: WorkflowSpec, behaviour: Behaviour = succeed_all) -> None:
        self.plan = compile_plan(spec)
        self.behaviour = behaviour
        self.now = 1_000.0
        self.view: ExecutionView | None = None
        self.commands: list[Command] = []
        self.timers: dict[str, Timer] = {}
        self.inbox: deque[InboxMessage] = deque()
        self.tasks: deque[TaskMessage] = deque()
        self.finished: ExecutionFinished | None = None
        self.rejections: list[str] = []

    # ------------------------------------------------------------- driving
    def start(self, input: Any = None) -> Harness:
        start = StartExecution(execution_id="e1", workflow_id=self.plan.workflow_id, input=input)
        self.view, decision = begin(self.plan, start, self.now)
        self._absorb(decision.commands)
        return self

    def send(self, message: InboxMessage) -> None:
        assert self.view is not None
        view = ExecutionView(
            self.view.meta,
            self.view.all_nodes(),
            self.view.revision,
            self.view.all_loop_values(),
        )
        decision = decide(self.plan, view, message, self.now)
        if decision.rejection is not None:
            self.rejections.append(decision.rejection.reason)
        self.view = view
        self._absorb(decision.commands)

    def _absorb(self, commands: list[Command]) -> None:
        self.commands.extend(commands)
        for command in commands:
            match command:
                case DispatchTask():
                    self.tasks.append(command.task)
                case ScheduleTimer():
                    self.timers[command.timer.id] = command.timer
                case CancelTimer():
                    self.timers.pop(command.timer_id, None)
                case ExecutionFinished():
                    self.finished = command

    def complete(self, task: TaskMessage) -> None:
        ok, value = self.behaviour(task)
        result = TaskResult(
            task_id=task.task_id,
            execution_id=task.execution_id,
            node_id=task.node_id,
            attempt=task.attempt,
            ok=ok,
            output=value if ok else None,
            error=None if ok else value,
        )
        self.send(result)

    def fire_next_timer(self) -> bool:
        if not self.timers:
            return False
        timer = min(self.timers.values(), key=lambda t: t.fire_at)
        del self.timers[timer.id]
        self.now = max(self.now, timer.fire_at)
        self.send(TimerFired(timer=timer))
        return True

    def run(self, max_steps: int = 10_000) -> ExecutionMeta:
        """Complete tasks in dispatch order, firing timers when idle, until finished."""
        for _ in range(max_steps):
            if self.finished is not None:
                break
            if self.tasks:
                self.complete(self.tasks.popleft())
            elif not self.fire_next_timer():
                break
        return self.meta

    # ----------------------------------------------------------- observing
    @property
    def meta(self) -> ExecutionMeta:
        assert self.view is not None
        return self.view.meta

    def node(self, node_id: str) -> Any:
        assert self.view is not None
        return self.view.node(node_id)

    def node_events(self) -> list[tuple[str, str]]:
        """(node_id, status) of every node-level lifecycle event, in order."""
        return [
            (c.event.data["node_id"], c.event.data["status"])
            for c in self.commands
            if isinstance(c, EmitEvent) and c.node_level
        ]

    def settle_counts(self) -> Counter[str]:
        terminal = {"succeeded", "failed", "skipped", "cancelled"}
        return Counter(node for node, status in self.node_events() if status in terminal)


def fail_with(kind: str = "Boom", **fields: Any) -> TaskFailure:
    return TaskFailure(type=kind, message=f"{kind} happened", **fields)
