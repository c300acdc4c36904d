"""One handler per inbox event: what a result, a timer, a child's end, a signal or a
control command does to an execution. Pure.

Handlers change the working state and append commands; they never raise for domain
outcomes (a stale result is ignored, a signal nobody waits for is refused).
"""

from __future__ import annotations

from typing import Any

import jsonschema

from spane.compiler.plan import PlanNode
from spane.core.dispatch import attempt_failed, enqueue_or_dispatch
from spane.core.graph import activate_later, fail, resume_deferred, succeed, terminate
from spane.core.ids import child_execution_id, task_id
from spane.core.loops import advance_loop, iteration_finished
from spane.core.recovery import reactivate
from spane.core.stopping import end_attempt, stop_children, stop_task, unregister_signal
from spane.core.working import (
    Working,
    cancel_timer,
    current_timer,
    emit_execution,
    emit_node,
    schedule,
    set_active,
)
from spane.schemas.messages import (
    AttemptLost,
    CancelCommand,
    ChildFinished,
    SignalCommand,
    TaskFailure,
    TaskHeartbeat,
    TaskResult,
)
from spane.schemas.state import (
    ErrorInfo,
    ExecutionStatus,
    NodeStatus,
    Timer,
    TimerKind,
    WaitReason,
)
from spane.schemas.workflow import SubWorkflowNode, WaitForSignalNode

MAX_LOST_ATTEMPTS = 5
"""A task that takes its worker down this many times fails (it is the task's fault)."""


def _running_attempt(w: Working, node_id: str, attempt: int) -> PlanNode | None:
    """The node, if ``attempt`` is its running attempt (else the news is stale)."""
    node = w.plan.nodes.get(node_id)
    if node is None:
        return None
    state = w.view.node(node_id)
    if state.status != NodeStatus.RUNNING or state.attempt != attempt:
        return None
    return node


# ------------------------------------------------------------------- attempts
def on_result(w: Working, message: TaskResult) -> None:
    node = _running_attempt(w, message.node_id, message.attempt)
    if node is None:
        return  # stale: a superseded or cancelled attempt
    if message.task_id != task_id(w.view.meta.id, node.id, message.attempt):
        return  # not the task this attempt dispatched
    end_attempt(w, node, message.attempt)
    if message.ok:
        succeed(w, node.id, message.output)
    else:
        failure = message.error or TaskFailure(type="Error", message="task failed")
        attempt_failed(w, node, message.attempt, failure)


def on_heartbeat(w: Working, message: TaskHeartbeat) -> None:
    node = _running_attempt(w, message.node_id, message.attempt)
    if node is not None and node.timeout is not None:
        deadline = w.now + node.timeout
        schedule(w, TimerKind.ATTEMPT_TIMEOUT, node.id, message.attempt, deadline)


def on_lost(w: Working, message: AttemptLost) -> None:
    """The worker running an attempt died: run it again, without using a retry."""
    node = _running_attempt(w, message.node_id, message.attempt)
    if node is None:
        return
    state = w.view.node(node.id)
    stop_task(w, node.id, state.attempt)
    end_attempt(w, node, state.attempt)
    error = ErrorInfo(
        type="WorkerLost", message=message.reason, node_id=node.id, attempt=state.attempt
    )
    if state.lost + 1 >= MAX_LOST_ATTEMPTS:
        text = f"{message.reason}; {MAX_LOST_ATTEMPTS} attempts lost their worker"
        fail(w, node.id, error.model_copy(update={"message": text}))
        return
    w.view.update_node(node.id, lost=state.lost + 1, error=error)
    emit_node(w, node.id, "retrying", error=error.model_dump(), delay=0)
    enqueue_or_dispatch(w, node.id)


# --------------------------------------------------------------------- timers
def on_timer(w: Working, timer: Timer) -> None:
    if timer.kind is TimerKind.EXECUTION_TIMEOUT:
        if w.plan.timeout is None or w.view.meta.deadline != timer.fire_at:
            return  # not the deadline this execution armed
        error = ErrorInfo(type="Timeout", message="execution timed out")
        terminate(w, ExecutionStatus.TIMED_OUT, error)
        return
    if w.view.meta.status == ExecutionStatus.PAUSED:
        w.view.update_meta(held=(*w.view.meta.held, timer))
        return
    fire_timer(w, timer)


def fire_timer(w: Working, timer: Timer) -> None:
    node_id = timer.node_id
    if node_id is None or node_id not in w.plan.nodes:
        return
    state = w.view.node(node_id)
    if state.attempt != timer.attempt or not current_timer(w, timer):
        return
    node = w.plan.node(node_id)
    match timer.kind:
        case TimerKind.RETRY if state.wait is WaitReason.RETRY:
            set_active(w, node_id, False)
            enqueue_or_dispatch(w, node_id)
        case TimerKind.ATTEMPT_TIMEOUT if state.status == NodeStatus.RUNNING:
            stop_task(w, node_id, state.attempt)
            end_attempt(w, node, state.attempt)
            text = f"attempt {state.attempt} of node {node_id!r} timed out after {node.timeout}s"
            attempt_failed(w, node, state.attempt, TaskFailure(type="Timeout", message=text))
        case TimerKind.DELAY if state.wait is WaitReason.DELAY:
            succeed(w, node_id, state.input)
        case TimerKind.SIGNAL_TIMEOUT if state.wait is WaitReason.SIGNAL:
            _signal_timed_out(w, node)
        case TimerKind.CHILD_TIMEOUT if state.wait is WaitReason.CHILD:
            stop_children(w, node_id)
            set_active(w, node_id, False)
            text = f"node {node_id!r}: child execution did not finish within {node.timeout}s"
            attempt_failed(w, node, state.attempt, TaskFailure(type="Timeout", message=text))
        case _:
            pass


def _signal_timed_out(w: Working, node: PlanNode) -> None:
    unregister_signal(w, node.id)
    name = node.spec.signal if isinstance(node.spec, WaitForSignalNode) else "?"
    text = f"no signal {name!r} within {node.timeout}s"
    attempt = w.view.node(node.id).attempt
    fail(w, node.id, ErrorInfo(type="Timeout", message=text, node_id=node.id, attempt=attempt))


# ------------------------------------------------------------------- children
def on_child_finished(w: Working, message: ChildFinished) -> None:
    node = w.plan.nodes.get(message.node_id)
    if node is None:
        return
    state = w.view.node(node.id)
    if state.wait is not WaitReason.CHILD:
        return
    if not isinstance(node.spec, SubWorkflowNode):
        iteration_finished(w, node, message)
        return
    if message.child_execution_id != child_execution_id(w.view.meta.id, node.id, state.attempt):
        return  # a superseded attempt's child (timed out and retried)
    if node.timeout is not None:
        cancel_timer(w, TimerKind.CHILD_TIMEOUT, node.id, state.attempt)
    set_active(w, node.id, False)
    if message.status == ExecutionStatus.SUCCEEDED:
        succeed(w, node.id, message.output)
        return
    child_error = message.error
    failure = TaskFailure(
        type=child_error.type if child_error else str(message.status),
        message=f"child execution {message.child_execution_id} {message.status}"
        + (f": {child_error.message}" if child_error else ""),
        details=child_error.model_dump() if child_error else None,
    )
    attempt_failed(w, node, state.attempt, failure)


# -------------------------------------------------------------------- signals
def on_signal(w: Working, message: SignalCommand) -> None:
    meta = w.view.meta
    if w.terminal:
        w.refuse(f"execution {meta.id} is {meta.status}")
        return
    waiting = meta.signals.get(message.name, ())
    if not waiting:
        names = ", ".join(sorted(meta.signals)) or "none"
        w.refuse(
            f"no node of execution {meta.id} is waiting for signal {message.name!r} "
            f"(waiting for: {names})"
        )
        return
    for node_id in waiting:
        problem = _payload_problem(w.plan.node(node_id), message)
        if problem is not None:
            w.refuse(problem)
            return
    for node_id in waiting:
        node = w.plan.node(node_id)
        unregister_signal(w, node_id)
        if node.timeout is not None:
            cancel_timer(w, TimerKind.SIGNAL_TIMEOUT, node_id, w.view.node(node_id).attempt)
        succeed(w, node_id, message.data)


def _payload_problem(node: PlanNode, message: SignalCommand) -> str | None:
    """Why the node refuses the signal's payload (its ``schema:``), or None."""
    if not isinstance(node.spec, WaitForSignalNode) or node.spec.signal_schema is None:
        return None
    try:
        jsonschema.validate(message.data, node.spec.signal_schema)
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return (
            f"signal {message.name!r} payload refused by node {node.id!r}: at {path}: {exc.message}"
        )
    return None


# ------------------------------------------------------------------- control
def start_roots(w: Working) -> None:
    """Emit ``started``, arm the execution timeout, queue the roots (a replay: every
    node whose join resolves from its seeded nodes)."""
    replay_of = w.view.meta.replay_of
    extra: dict[str, Any] = {"replay_of": replay_of} if replay_of is not None else {}
    emit_execution(w, "started", input=w.view.input, **extra)
    if w.plan.timeout is not None:
        w.view.update_meta(deadline=w.now + w.plan.timeout)
        schedule(w, TimerKind.EXECUTION_TIMEOUT, None, 0, w.now + w.plan.timeout)
    if replay_of is not None:
        reactivate(w)
        return
    for root in w.plan.roots:
        activate_later(w, root)


def on_activate(w: Working) -> None:
    if w.view.meta.status != ExecutionStatus.PENDING:
        return  # already running (a redelivered activation)
    w.view.update_meta(status=ExecutionStatus.RUNNING)
    start_roots(w)


def on_pause(w: Working) -> None:
    meta = w.view.meta
    if meta.status != ExecutionStatus.RUNNING:
        w.refuse(f"execution {meta.id} is {meta.status}, not running")
        return
    meta = w.view.update_meta(status=ExecutionStatus.PAUSED, pauses=meta.pauses + 1)
    emit_execution(w, "paused", seq=meta.pauses)


def on_resume(w: Working) -> None:
    meta = w.view.meta
    if meta.status != ExecutionStatus.PAUSED:
        w.refuse(f"execution {meta.id} is {meta.status}, not paused")
        return
    held = meta.held
    w.view.update_meta(status=ExecutionStatus.RUNNING, held=())
    emit_execution(w, "resumed", seq=meta.pauses)
    resume_deferred(w)
    for timer in held:
        fire_timer(w, timer)
    for node_id in tuple(w.view.active()):
        if w.view.node(node_id).loop is not None:
            advance_loop(w, w.plan.node(node_id))  # iterations held while paused


def on_cancel(w: Working, message: CancelCommand) -> None:
    meta = w.view.meta
    if w.terminal:
        w.refuse(f"execution {meta.id} is already {meta.status}")
        return
    reason = message.reason or "cancelled by request"
    terminate(w, ExecutionStatus.CANCELLED, ErrorInfo(type="Cancelled", message=reason))
