"""Walking the graph: settling nodes, propagating their ports through joins, failing,
finishing. Pure.

``settle`` records a node's outcome and hands the children whose join resolved to the
work list (``Working.work``); it never activates them itself, so skip propagation down
long chains is a loop bounded by the graph, not recursion bounded by Python's stack.
"""

from __future__ import annotations

from typing import Any

from spane.compiler.plan import PORT_ALWAYS, PORT_ERROR, PORT_SUCCESS, PlanNode
from spane.core.context import build_context, default_output
from spane.core.joins import Verdict, edge_fired, join_verdict, settle_edge
from spane.core.stopping import stop_node
from spane.core.working import (
    Working,
    cancel_timer,
    cancelled_error,
    emit_execution,
    emit_node,
    set_active,
)
from spane.errors import ExpressionError
from spane.schemas.commands import ExecutionFinished, NotifyParent
from spane.schemas.messages import ChildFinished
from spane.schemas.state import (
    TERMINAL_NODE_STATUSES,
    ErrorInfo,
    ExecutionStatus,
    NodeStatus,
    TimerKind,
)


def settle(
    w: Working,
    node_id: str,
    status: NodeStatus,
    *,
    output: Any = None,
    error: ErrorInfo | None = None,
    ports: tuple[str, ...] = (),
) -> None:
    """Record a node's final outcome and propagate its ports to its children."""
    state = w.view.node(node_id)
    if state.status in TERMINAL_NODE_STATUSES:
        return
    if status == NodeStatus.FAILED:
        ports = (*ports, PORT_ERROR)
    fired = (*ports, PORT_ALWAYS)
    w.view.update_node(
        node_id,
        status=status,
        output=output,
        error=error,
        fired=fired,
        wait=None,
        finished_at=w.now,
    )
    set_active(w, node_id, False)
    w.view.update_meta(unsettled=w.view.meta.unsettled - 1)
    _emit_settled(w, node_id, status, output, error)
    node = w.plan.node(node_id)
    if status == NodeStatus.FAILED and not node.handles_error:
        begin_failing(w, error or ErrorInfo(type="Error", message="failed", node_id=node_id))
    _propagate(w, node, fired)


def succeed(
    w: Working, node_id: str, output: Any, ports: tuple[str, ...] = (PORT_SUCCESS,)
) -> None:
    settle(w, node_id, NodeStatus.SUCCEEDED, output=output, ports=ports)


def fail(w: Working, node_id: str, error: ErrorInfo) -> None:
    """Fail a node for good (no retry)."""
    settle(w, node_id, NodeStatus.FAILED, error=error)


def _emit_settled(
    w: Working, node_id: str, status: NodeStatus, output: Any, error: ErrorInfo | None
) -> None:
    if status == NodeStatus.SUCCEEDED:
        emit_node(w, node_id, str(status), output=output)
    elif error is not None:
        emit_node(w, node_id, str(status), error=error.model_dump())
    else:
        emit_node(w, node_id, str(status))


def _propagate(w: Working, node: PlanNode, fired: tuple[str, ...]) -> None:
    for edge in node.children:
        child = w.view.node(edge.target)
        if child.status != NodeStatus.PENDING:
            continue
        target = w.plan.node(edge.target)
        child = w.view.update_node(
            edge.target, **settle_edge(target, child, edge, edge.port in fired)
        )
        verdict = join_verdict(target, child.joined, child.joined_fired)
        if verdict is not Verdict.WAIT:
            w.view.update_node(edge.target, status=NodeStatus.READY)
            w.work.append((edge.target, verdict is Verdict.FIRE))


def activate_later(w: Working, node_id: str) -> None:
    """Queue a node whose join resolved (roots at start)."""
    w.view.update_node(node_id, status=NodeStatus.READY)
    w.work.append((node_id, True))


def resume_deferred(w: Working) -> None:
    """Activations that came due while paused run now, in order."""
    deferred = w.view.meta.deferred
    w.view.update_meta(deferred=())
    w.work.extend((node_id, True) for node_id in deferred)


def is_finally(w: Working, node: PlanNode) -> bool:
    """Whether a node may start while the execution is failing."""
    finally_nodes = w.view.meta.finally_nodes
    return any(
        (edge.port == PORT_ALWAYS or edge.source in finally_nodes)
        and edge_fired(node, w.view, edge)
        for edge in node.parents
    )


# ------------------------------------------------------------- failure / end
def begin_failing(w: Working, error: ErrorInfo) -> None:
    """An unhandled failure: cancel what runs; only finally branches may start."""
    meta = w.view.meta
    if meta.failing or w.terminal:
        return
    w.view.update_meta(failing=True, error=error)
    finally_nodes = set(meta.finally_nodes)
    for node_id in tuple(w.view.active()):
        if node_id not in finally_nodes:
            stop_node(w, node_id)
            settle(w, node_id, NodeStatus.CANCELLED, error=cancelled_error(node_id, error))
    for node_id in tuple(w.view.queue()):
        if node_id not in finally_nodes:
            w.view.remove_queued(node_id)
            settle(w, node_id, NodeStatus.CANCELLED, error=cancelled_error(node_id, error))


def finish_if_done(w: Working) -> None:
    meta = w.view.meta
    if w.terminal or meta.status == ExecutionStatus.PENDING:
        return
    if meta.failing:
        if not w.view.active() and not w.view.queue() and not meta.deferred:
            finish(w, ExecutionStatus.FAILED, error=meta.error)
        return
    if meta.unsettled > 0:
        return
    output, error = _output(w)
    if error is not None:
        finish(w, ExecutionStatus.FAILED, error=error)
    else:
        finish(w, ExecutionStatus.SUCCEEDED, output=output)


def _output(w: Working) -> tuple[Any, ErrorInfo | None]:
    plan = w.plan
    if plan.output is None:
        return default_output(plan, w.view), None
    context = build_context(plan, plan.output_refs, w.view, None)
    try:
        return plan.output.render(context), None
    except ExpressionError as exc:
        return None, ErrorInfo(type="ExpressionError", message=f"workflow output: {exc}")


def finish(
    w: Working, status: ExecutionStatus, *, output: Any = None, error: ErrorInfo | None = None
) -> None:
    meta = w.view.update_meta(
        status=status,
        output=output,
        error=error,
        finished_at=w.now,
        active=(),
        queue=(),
        deferred=(),
        running=0,
        signals={},
        held=(),
    )
    if w.plan.timeout is not None:
        cancel_timer(w, TimerKind.EXECUTION_TIMEOUT, None)
    extra: dict[str, Any] = {"output": output} if status == ExecutionStatus.SUCCEEDED else {}
    if error is not None:
        extra["error"] = error.model_dump()
    emit_execution(w, str(status), seq=meta.retries or None, **extra)  # seq: after a retry
    w.commands.append(
        ExecutionFinished(
            meta.id,
            meta.workflow_id,
            status,
            output,
            error,
            version=meta.version,
            top_level=meta.parent is None and meta.body is None,
        )
    )
    if meta.parent is not None:
        message = ChildFinished(
            execution_id=meta.parent.execution_id,
            node_id=meta.parent.node_id,
            iteration=meta.parent.iteration,
            child_execution_id=meta.id,
            status=status,
            output=output,
            error=error,
            control=meta.loop_control,
        )
        w.commands.append(NotifyParent(message))


def terminate(w: Working, status: ExecutionStatus, error: ErrorInfo) -> None:
    """Cancel or time out: stop everything, run no finally branches."""
    meta = w.view.meta
    for node_id in (*w.view.active(), *w.view.queue(), *meta.deferred):
        stop_node(w, node_id)
        w.view.update_node(
            node_id,
            status=NodeStatus.CANCELLED,
            error=cancelled_error(node_id, error),
            finished_at=w.now,
            wait=None,
        )
        emit_node(w, node_id, str(NodeStatus.CANCELLED))
    w.work.clear()
    finish(w, status, error=error)
