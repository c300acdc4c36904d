"""Running attempts: the per-execution queue (``max_concurrency``, pause, priorities),
task dispatch, sub-workflow children, and what a failed attempt leads to. Pure."""

from __future__ import annotations

from typing import Any

from spane.compiler.plan import PlanNode
from spane.core.context import build_context
from spane.core.control import expression_failure
from spane.core.graph import fail, settle, succeed
from spane.core.ids import child_execution_id, task_id
from spane.core.retry import retry_delay, should_retry
from spane.core.working import Working, emit_node, schedule, set_active
from spane.errors import ExpressionError
from spane.schemas.commands import DispatchTask, StartChild
from spane.schemas.messages import StartExecution, TaskFailure, TaskMessage
from spane.schemas.state import (
    ErrorInfo,
    ExecutionStatus,
    NodeStatus,
    ParentLink,
    TimerKind,
    WaitReason,
)
from spane.schemas.workflow import FunctionNode, SubWorkflowNode

SECRETS = frozenset({"secrets"})
"""Resolved on the worker, never by the orchestrator (DESIGN §2, "Data passing")."""


def enqueue_or_dispatch(w: Working, node_id: str) -> None:
    """Start the node's next attempt now, or queue it (paused, or no free slot)."""
    meta = w.view.meta
    limit = w.plan.max_concurrency
    full = limit is not None and meta.running >= limit
    if meta.status == ExecutionStatus.PAUSED or full:
        w.view.update_node(node_id, status=NodeStatus.READY, wait=None)
        priority = w.plan.node(node_id).priority
        queue = w.view.queue()
        position = len(queue)
        while position > 0 and w.plan.node(queue[position - 1]).priority < priority:
            position -= 1
        w.view.insert_queued(position, node_id)
        return
    dispatch(w, node_id)


def drain_queue(w: Working) -> bool:
    """Dispatch queued nodes while capacity allows; True if any started."""
    started = False
    limit = w.plan.max_concurrency
    while w.view.queue() and w.view.meta.status == ExecutionStatus.RUNNING:
        if limit is not None and w.view.meta.running >= limit:
            break
        dispatch(w, w.view.pop_queued())
        started = True
    return started


def dispatch(w: Working, node_id: str) -> None:
    """Start the next attempt of a task node (or sub-workflow)."""
    node = w.plan.node(node_id)
    state = w.view.node(node_id)
    attempt = state.attempt + 1
    if isinstance(node.spec, SubWorkflowNode):
        _start_child(w, node, node.spec, attempt)
        return
    try:
        task = _task_message(w, node, attempt, state.input)
    except ExpressionError as exc:
        w.view.update_node(node_id, attempt=attempt)
        fail(w, node_id, expression_failure(node, _failed_field(exc), exc))
        return
    w.view.update_node(node_id, status=NodeStatus.RUNNING, attempt=attempt, wait=None)
    w.view.update_meta(running=w.view.meta.running + 1)
    set_active(w, node_id, True)
    w.commands.append(DispatchTask(task))
    if node.timeout is not None:
        schedule(w, TimerKind.ATTEMPT_TIMEOUT, node_id, attempt, w.now + node.timeout)
    schedule(w, TimerKind.LIVENESS, node_id, attempt, w.now + w.options.liveness)
    emit_node(w, node_id, "started")


def _task_message(w: Working, node: PlanNode, attempt: int, data: Any) -> TaskMessage:
    meta = w.view.meta
    context = build_context(w.plan, node.node_refs, w.view, data)
    rendered = {
        name: _render_field(template, context, name) for name, template in node.templates.items()
    }
    return TaskMessage(
        task_id=task_id(meta.id, node.id, attempt),
        execution_id=meta.id,
        workflow_id=meta.workflow_id,
        version=meta.version,
        node_id=node.id,
        type=node.type,
        attempt=attempt,
        input=data,
        input_template=node.input is not None,
        function=node.spec.function if isinstance(node.spec, FunctionNode) else None,
        request=rendered.get("request"),
        expect=rendered.get("expect"),
        config=rendered.get("config"),
        timeout=node.timeout,
        priority=max(node.priority, meta.priority),
        dispatched_at=w.now,
        pool=node.pool if node.pool != node.type else None,  # None: the type's own pool
        traceparent=meta.traceparent,
    )


def _render_field(template: Any, context: dict[str, Any], name: str) -> Any:
    try:
        return template.render(context, defer=SECRETS)
    except ExpressionError as exc:
        raise type(exc)(f"{name}: {exc}") from exc


def _failed_field(exc: ExpressionError) -> str:
    text = str(exc)
    return text.split(":", 1)[0] if ":" in text else "request"


def _start_child(w: Working, node: PlanNode, spec: SubWorkflowNode, attempt: int) -> None:
    meta = w.view.meta
    if meta.depth + 1 > w.options.max_depth:
        w.view.update_node(node.id, attempt=attempt)
        fail(
            w,
            node.id,
            ErrorInfo(
                type="DepthLimitExceeded",
                message=f"node {node.id!r}: sub-workflows nest deeper than "
                f"{w.options.max_depth} levels",
                node_id=node.id,
                attempt=attempt,
            ),
        )
        return
    child_id = child_execution_id(meta.id, node.id, attempt)
    start = StartExecution(
        execution_id=child_id,
        workflow_id=spec.workflow,
        version=spec.version,
        input=w.view.node(node.id).input,
        priority=meta.priority,
        parent=ParentLink(execution_id=meta.id, node_id=node.id),
        depth=meta.depth + 1,
        traceparent=meta.traceparent,
    )
    w.commands.append(StartChild(start))
    state = w.view.node(node.id)
    w.view.update_node(node.id, attempt=attempt, children=(*state.children, child_id))
    emit_node(w, node.id, "started")
    if not spec.wait:
        succeed(w, node.id, {"execution_id": child_id})
        return
    w.view.update_node(node.id, status=NodeStatus.WAITING, wait=WaitReason.CHILD)
    set_active(w, node.id, True)
    if node.timeout is not None:
        schedule(w, TimerKind.CHILD_TIMEOUT, node.id, attempt, w.now + node.timeout)


def attempt_failed(w: Working, node: PlanNode, attempt: int, failure: TaskFailure) -> None:
    """An attempt failed: retry after a durable backoff timer, or fail the node."""
    error = ErrorInfo(
        type=failure.type,
        message=failure.message,
        node_id=node.id,
        attempt=attempt,
        details=failure.details,
    )
    meta = w.view.meta
    if meta.failing and node.id not in meta.finally_nodes:
        fail(w, node.id, error)
        return
    state = w.view.node(node.id)
    counted = attempt - state.attempt_base  # the budget starts afresh after a retry
    if should_retry(node.retry, failure, counted - state.lost):
        seed = task_id(meta.id, node.id, attempt)
        delay = retry_delay(node.retry, failure, counted, seed)
        w.view.update_node(node.id, status=NodeStatus.WAITING, wait=WaitReason.RETRY, error=error)
        set_active(w, node.id, True)
        schedule(w, TimerKind.RETRY, node.id, attempt, w.now + delay)
        emit_node(w, node.id, "retrying", error=error.model_dump(), delay=delay)
        return
    settle(w, node.id, NodeStatus.FAILED, error=error)
