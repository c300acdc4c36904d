"""Activating nodes whose join fired, and the walk that drives a decision to rest. Pure.

Activation checks the node's guard (``when``), renders its input, then starts it by
the type of its spec: tasks and sub-workflows are dispatched (or queued), control
nodes settle inline, delays and signals wait, loops start their iterations.
"""

from __future__ import annotations

from typing import Any

from spane.compiler.plan import NodeKind, PlanNode
from spane.core.context import build_context, gather_data
from spane.core.control import Outcome, delay_fire_at, expression_failure, run_inline
from spane.core.dispatch import SECRETS, drain_queue, enqueue_or_dispatch
from spane.core.graph import fail, finish_if_done, is_finally, settle, succeed
from spane.core.loops import end_iteration, start_loop
from spane.core.working import Working, emit_node, schedule, set_active
from spane.errors import ExpressionError
from spane.expressions import evaluate_condition
from spane.schemas.state import ErrorInfo, ExecutionStatus, NodeStatus, TimerKind, WaitReason
from spane.schemas.workflow import (
    BreakNode,
    ContinueNode,
    DelayNode,
    ForEachNode,
    RepeatNode,
    SubWorkflowNode,
    WaitForSignalNode,
    WhileNode,
)


def run(w: Working) -> None:
    """Process the work list, fill free capacity, then check for completion."""
    while True:
        while w.work:
            node_id, fire = w.work.popleft()
            if w.terminal:
                w.work.clear()
                break
            if fire and w.view.meta.status == ExecutionStatus.PAUSED:
                deferred = w.view.meta.deferred
                w.view.update_meta(deferred=(*deferred, node_id))  # runs on resume
            elif fire:
                activate(w, node_id)
            else:
                settle(w, node_id, NodeStatus.SKIPPED)
        if not drain_queue(w):
            break
    finish_if_done(w)


def activate(w: Working, node_id: str) -> None:
    """Run a node whose join fired: guard, input, then by type."""
    node = w.plan.node(node_id)
    meta = w.view.meta
    if meta.failing:
        if not is_finally(w, node):
            settle(w, node_id, NodeStatus.CANCELLED, error=_not_started(node_id, meta.error))
            return
        w.view.update_meta(finally_nodes=(*meta.finally_nodes, node_id))
    data = gather_data(node, w.view)
    context = build_context(w.plan, node.node_refs, w.view, data)
    if node.guard is not None:
        try:
            if not evaluate_condition(node.guard, context):
                settle(w, node_id, NodeStatus.SKIPPED)
                return
        except ExpressionError as exc:
            fail(w, node_id, expression_failure(node, "when", exc))
            return
    if node.input is not None:
        try:
            defer = SECRETS if node.kind is NodeKind.TASK else frozenset()
            data = node.input.render(context, defer=defer)
        except ExpressionError as exc:
            fail(w, node_id, expression_failure(node, "input", exc))
            return
        context["data"] = data
    w.view.update_node(node_id, input=data, started_at=w.now)
    _start(w, node, data, context)


def _start(w: Working, node: PlanNode, data: Any, context: dict[str, Any]) -> None:
    if node.kind is NodeKind.TASK or isinstance(node.spec, SubWorkflowNode):
        enqueue_or_dispatch(w, node.id)
        return
    attempt = w.view.update_node(node.id, attempt=w.view.node(node.id).attempt + 1).attempt
    match node.spec:
        case BreakNode() | ContinueNode():
            end_iteration(w, node, node.spec, data)
            return
        case DelayNode():
            emit_node(w, node.id, "started")
            _wait_delay(w, node, node.spec, context, attempt)
            return
        case WaitForSignalNode():
            emit_node(w, node.id, "started")
            _wait_signal(w, node, node.spec, attempt)
            return
        case ForEachNode() | WhileNode() | RepeatNode():
            emit_node(w, node.id, "started")
            start_loop(w, node, context)
            return
        case _:
            pass
    outcome = run_inline(node, data, context)
    if outcome is None:
        raise TypeError(f"node {node.id!r}: no way to run a {node.type!r} node")
    emit_node(w, node.id, "started")
    _apply_outcome(w, node, outcome)


def _apply_outcome(w: Working, node: PlanNode, outcome: Outcome) -> None:
    if outcome.set_vars:
        w.view.update_meta(vars={**w.view.meta.vars, **outcome.set_vars})
    if outcome.error is not None:
        fail(w, node.id, outcome.error)
    else:
        succeed(w, node.id, outcome.output, outcome.ports)


def _wait_delay(
    w: Working, node: PlanNode, spec: DelayNode, context: dict[str, Any], attempt: int
) -> None:
    try:
        fire_at = delay_fire_at(node, spec, context, w.now)
    except (ExpressionError, ValueError) as exc:
        message = f"node {node.id!r}: until: {exc}"
        error = ErrorInfo(type="ValueError", message=message, node_id=node.id, attempt=attempt)
        fail(w, node.id, error)
        return
    if fire_at <= w.now:
        succeed(w, node.id, w.view.node(node.id).input)
        return
    w.view.update_node(node.id, status=NodeStatus.WAITING, wait=WaitReason.DELAY, attempt=attempt)
    set_active(w, node.id, True)
    schedule(w, TimerKind.DELAY, node.id, attempt, fire_at)


def _wait_signal(w: Working, node: PlanNode, spec: WaitForSignalNode, attempt: int) -> None:
    signals = w.view.meta.signals
    waiting = signals.get(spec.signal, ())
    w.view.update_meta(signals={**signals, spec.signal: (*waiting, node.id)})
    w.view.update_node(node.id, status=NodeStatus.WAITING, wait=WaitReason.SIGNAL, attempt=attempt)
    set_active(w, node.id, True)
    if node.timeout is not None:
        schedule(w, TimerKind.SIGNAL_TIMEOUT, node.id, attempt, w.now + node.timeout)


def _not_started(node_id: str, cause: ErrorInfo | None) -> ErrorInfo:
    reason = cause.message if cause else "execution failing"
    return ErrorInfo(type="Cancelled", message=f"not started: {reason}", node_id=node_id)
