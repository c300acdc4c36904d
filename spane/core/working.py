"""The working state of one decision and the bookkeeping every part of the core shares.

A :class:`Working` is a plain object, not a base class: the plan, the execution's view,
the time, the options, and what the decision has produced so far (commands, a refusal,
the nodes whose join resolved). The functions here record events, timers and the set
of active nodes; the modules beside this one (graph, dispatch, loops, activation,
handlers) are functions over a ``Working``. Pure.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from spane.compiler.plan import Plan
from spane.core.ids import timer_id
from spane.core.options import CoreOptions
from spane.schemas.commands import (
    CancelTimer,
    Command,
    Decision,
    EmitEvent,
    Rejection,
    ScheduleTimer,
)
from spane.schemas.events import execution_event, node_event
from spane.schemas.state import (
    TERMINAL_EXECUTION_STATUSES,
    ErrorInfo,
    ExecutionMeta,
    Timer,
    TimerKind,
)
from spane.schemas.view import ExecutionView


class Working:
    """One decision in progress. ``work`` holds nodes whose join resolved: ``(id, fire)``."""

    __slots__ = ("commands", "now", "options", "plan", "rejection", "view", "work")

    def __init__(self, plan: Plan, view: ExecutionView, now: float, options: CoreOptions):
        self.plan = plan
        self.view = view
        self.now = now
        self.options = options
        self.commands: list[Command] = []
        self.rejection: Rejection | None = None
        self.work: deque[tuple[str, bool]] = deque()

    def decision(self) -> Decision:
        return Decision(self.commands, self.rejection)

    def refuse(self, reason: str) -> None:
        self.rejection = Rejection(reason)

    @property
    def terminal(self) -> bool:
        return self.view.meta.status in TERMINAL_EXECUTION_STATUSES


# ---------------------------------------------------------------------- events
def emit_execution(w: Working, status: str, seq: int | None = None, **extra: Any) -> None:
    """``seq`` tells repeated statuses apart (the n-th pause / resume)."""
    meta = w.view.meta
    key, event = execution_event(
        execution_id=meta.id,
        workflow_id=meta.workflow_id,
        version=meta.version,
        status=status,
        now=w.now,
        extra=_parent_extra(meta) | extra,
        seq=seq,
        child=meta.parent is not None,
        loop_node=meta.parent.node_id
        if meta.parent and meta.parent.iteration is not None
        else None,
    )
    w.commands.append(EmitEvent(key, event, node_level=False))


def emit_node(w: Working, node_id: str, status: str, **extra: Any) -> None:
    if not w.options.node_events:
        return
    meta = w.view.meta
    key, event = node_event(
        execution_id=meta.id,
        workflow_id=meta.workflow_id,
        version=meta.version,
        node_id=node_id,
        attempt=w.view.node(node_id).attempt,
        status=status,
        now=w.now,
        extra=extra,
    )
    w.commands.append(EmitEvent(key, event, node_level=True))


def _parent_extra(meta: ExecutionMeta) -> dict[str, Any]:
    if meta.parent is None:
        return {}
    return {"parent_execution_id": meta.parent.execution_id}


# ------------------------------------------------------------------ active set
def set_active(w: Working, node_id: str, active: bool) -> None:
    w.view.set_active(node_id, active)  # O(1): the view keeps the set while deciding


# ---------------------------------------------------------------------- timers
def schedule(w: Working, kind: TimerKind, node_id: str | None, attempt: int, at: float) -> None:
    """Arm a durable timer; node timers (but liveness checks) are recorded on the node."""
    meta = w.view.meta
    timer = Timer(
        id=timer_id(kind, meta.id, node_id, attempt),
        execution_id=meta.id,
        kind=kind,
        fire_at=at,
        node_id=node_id,
        attempt=attempt,
    )
    w.commands.append(ScheduleTimer(timer))
    if node_id is not None and kind is not TimerKind.LIVENESS:
        armed = w.view.node(node_id).timers
        w.view.update_node(node_id, timers={**armed, str(kind): at})


def cancel_timer(w: Working, kind: TimerKind, node_id: str | None, attempt: int = 0) -> None:
    w.commands.append(CancelTimer(timer_id(kind, w.view.meta.id, node_id, attempt)))
    disarm(w, kind, node_id)


def disarm(w: Working, kind: TimerKind, node_id: str | None) -> None:
    if node_id is not None and str(kind) in w.view.node(node_id).timers:
        armed = dict(w.view.node(node_id).timers)
        del armed[str(kind)]
        w.view.update_node(node_id, timers=armed)


def current_timer(w: Working, timer: Timer) -> bool:
    """Whether a node timer that fired is the one armed now. A stale firing (a timer
    replaced by a heartbeat, or one a replayed command rolled back) is ignored, and the
    armed deadline is restored in the store in case the replay overwrote it."""
    if timer.node_id is None or timer.kind is TimerKind.LIVENESS:
        return True
    armed = w.view.node(timer.node_id).timers.get(str(timer.kind))
    if armed is None:
        return False
    if armed != timer.fire_at:
        schedule(w, timer.kind, timer.node_id, timer.attempt, armed)
        return False
    disarm(w, timer.kind, timer.node_id)
    return True


def cancelled_error(node_id: str, cause: ErrorInfo) -> ErrorInfo:
    return ErrorInfo(type="Cancelled", message=f"cancelled: {cause.message}", node_id=node_id)
