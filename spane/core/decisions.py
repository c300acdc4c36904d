"""The decision core's entry points: one event + the execution's state -> state changes
+ commands. Pure.

``begin`` starts an execution, ``decide`` handles every later event. Both take the
time (``now``) as an argument, never raise for domain failures (a node failing, a
signal nobody waits for), and return a :class:`Decision`; the adapter persists the
view's changes atomically and then executes the commands.
"""

from __future__ import annotations

from spane.compiler.plan import Plan
from spane.core import handlers, recovery
from spane.core.activation import run
from spane.core.options import CoreOptions
from spane.core.working import Working
from spane.schemas.commands import Decision
from spane.schemas.messages import (
    ActivateExecution,
    AttemptLost,
    CancelCommand,
    ChildFinished,
    InboxMessage,
    PauseCommand,
    ResumeCommand,
    RetryCommand,
    SignalCommand,
    StartExecution,
    TaskHeartbeat,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import ExecutionMeta, ExecutionStatus
from spane.schemas.view import ExecutionView

_ENGINE_EVENTS = (
    TaskResult,
    TaskHeartbeat,
    TimerFired,
    ChildFinished,
    ActivateExecution,
    AttemptLost,
)
"""News from the engine itself; a finished execution ignores them (late news)."""


def new_meta(plan: Plan, start: StartExecution, now: float) -> ExecutionMeta:
    """The state of an execution that is accepted and about to start."""
    return ExecutionMeta(
        id=start.execution_id,
        workflow_id=start.workflow_id,
        version=plan.version,
        status=ExecutionStatus.RUNNING,
        input=start.input,
        vars=dict(plan.initial_vars),
        created_at=now,
        deadline=now + plan.timeout if plan.timeout is not None else None,
        parent=start.parent,
        depth=start.depth,
        priority=start.priority,
        idempotency_key=start.idempotency_key,
        unsettled=len(plan.nodes),
        context=dict(start.context),
        body=start.body,
        replay_of=start.replay_of,
        traceparent=start.traceparent,
    )


def begin(
    plan: Plan,
    start: StartExecution,
    now: float,
    options: CoreOptions | None = None,
    *,
    pending: bool = False,
) -> tuple[ExecutionView, Decision]:
    """Create a new execution's state and start its roots.

    ``pending=True`` (no ``max_executions`` slot free) stores it as PENDING instead;
    an :class:`ActivateExecution` starts it later.
    """
    meta = new_meta(plan, start, now)
    if pending:
        meta = meta.model_copy(update={"status": ExecutionStatus.PENDING, "deadline": None})
    view = ExecutionView(meta, {})
    if start.seed:
        recovery.seed_view(plan, view, start.seed)
    w = Working(plan, view, now, options or CoreOptions())
    if not pending:
        with view.deciding():
            handlers.start_roots(w)
            run(w)
    return view, w.decision()


def decide(
    plan: Plan,
    view: ExecutionView,
    message: InboxMessage,
    now: float,
    options: CoreOptions | None = None,
) -> Decision:
    """Apply one event to an execution; ``view`` records the changes."""
    w = Working(plan, view, now, options or CoreOptions())
    if w.terminal and isinstance(message, _ENGINE_EVENTS):
        return w.decision()  # late news for a finished execution changes nothing
    with view.deciding():
        _handle(w, message)
        if w.rejection is None:
            run(w)
    return w.decision()


def _handle(w: Working, message: InboxMessage) -> None:
    match message:
        case TaskResult():
            handlers.on_result(w, message)
        case TaskHeartbeat():
            handlers.on_heartbeat(w, message)
        case TimerFired():
            handlers.on_timer(w, message.timer)
        case ChildFinished():
            handlers.on_child_finished(w, message)
        case AttemptLost():
            handlers.on_lost(w, message)
        case ActivateExecution():
            handlers.on_activate(w)
        case _:
            _handle_command(w, message)


def _handle_command(w: Working, message: InboxMessage) -> None:
    """Commands from outside (and a start for an execution that exists)."""
    match message:
        case SignalCommand():
            handlers.on_signal(w, message)
        case PauseCommand():
            handlers.on_pause(w)
        case ResumeCommand():
            handlers.on_resume(w)
        case CancelCommand():
            handlers.on_cancel(w, message)
        case RetryCommand():
            recovery.on_retry(w, message)
        case StartExecution():
            w.refuse(f"execution {message.execution_id} already exists")
        case _:
            raise TypeError(f"no handler for {type(message).__name__}")
