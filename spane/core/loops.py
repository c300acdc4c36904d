"""Loops (for_each, while, repeat) and break/continue, as child executions. Pure.

Each iteration is a child execution of the loop's body (an inline body, addressed by
the path of loop node ids, or a registered workflow). Iterations start as capacity
frees (``concurrency`` for for_each, one at a time for while/repeat), so a loop over
thousands of items never floods the orchestrator. A for_each keeps its items and
its iterations' results in the view's loop data (one field each, written once), so an
iteration costs O(1) whatever the loop's length: the results are read once, when the
loop completes.
"""

from __future__ import annotations

from typing import Any

from spane.compiler.plan import PlanNode
from spane.core.context import build_context
from spane.core.control import expression_failure
from spane.core.graph import fail, finish, succeed
from spane.core.ids import child_execution_id
from spane.core.stopping import stop_iterations, stop_node
from spane.core.working import Working, set_active
from spane.errors import ExpressionError
from spane.expressions import evaluate_condition
from spane.schemas.commands import StartChild
from spane.schemas.messages import ChildFinished, StartExecution
from spane.schemas.state import (
    ErrorInfo,
    ExecutionStatus,
    LoopState,
    NodeStatus,
    ParentLink,
    WaitReason,
)
from spane.schemas.view import ABSENT, loop_field
from spane.schemas.workflow import BreakNode, ContinueNode, ForEachNode, RepeatNode, WhileNode

LoopSpec = ForEachNode | WhileNode | RepeatNode


def body_path(parent_body: str | None, node_id: str) -> str:
    """Address of an inline body: loop node ids from the workflow's top, ``/``-joined."""
    return f"{parent_body}/{node_id}" if parent_body else node_id


def loop_spec(node: PlanNode) -> LoopSpec:
    match node.spec:
        case ForEachNode() | WhileNode() | RepeatNode():
            return node.spec
        case _:
            raise TypeError(f"node {node.id!r} is a {node.type}, not a loop")


# ---------------------------------------------------------------------- start
def start_loop(w: Working, node: PlanNode, context: dict[str, Any]) -> None:
    loop, items, error = _initial_loop(node, loop_spec(node), context)
    if loop is None:
        fail(w, node.id, error or _loop_error(node, "could not start"))
        return
    if items is not None:  # for_each: each item written once, read by its iteration
        attempt = w.view.node(node.id).attempt
        w.view.set_loop_values(
            {loop_field(node.id, attempt, "i", i): item for i, item in enumerate(items)}
        )
        # Its input is not kept in its state either: every iteration's end rewrites the
        # node's state, and a copy of (typically) every item there made each of those
        # writes O(items). The items are in the loop data; the data is its upstream's.
        w.view.update_node(node.id, input=None)
    w.view.update_node(node.id, status=NodeStatus.WAITING, wait=WaitReason.CHILD, loop=loop)
    set_active(w, node.id, True)
    advance_loop(w, node)


def _initial_loop(
    node: PlanNode, spec: LoopSpec, context: dict[str, Any]
) -> tuple[LoopState | None, list[Any] | None, ErrorInfo | None]:
    """The loop's state, a for_each's items, or why the loop cannot start."""
    try:
        match spec:
            case ForEachNode():
                items = node.templates["items"].render(context)
                if not isinstance(items, list):
                    kind = type(items).__name__
                    return None, None, _loop_error(node, f"'items' must be a list, got {kind}")
                return LoopState(total=len(items)), items, None
            case RepeatNode():
                template = node.templates.get("times")
                times = template.render(context) if template is not None else spec.times
                if isinstance(times, bool) or not isinstance(times, int) or times < 0:
                    message = f"'times' must be an integer >= 0, got {times!r}"
                    return None, None, _loop_error(node, message)
                return LoopState(total=times), None, None
            case WhileNode():
                return LoopState(), None, None
    except ExpressionError as exc:
        field = "items" if isinstance(spec, ForEachNode) else "times"
        return None, None, expression_failure(node, field, exc)


# ------------------------------------------------------------------- progress
def advance_loop(w: Working, node: PlanNode) -> None:
    """Start iterations while allowed; settle the node when the loop is over."""
    spec = loop_spec(node)
    while True:
        loop = _loop(w, node)
        if loop.stopping or not _may_start(w, node, spec, loop):
            break
        if isinstance(spec, WhileNode) and not _condition_holds(w, node, loop):
            if w.view.node(node.id).status == NodeStatus.FAILED:
                return
            w.view.update_node(node.id, loop=loop.model_copy(update={"total": loop.next}))
            continue
        guarded = not isinstance(spec, ForEachNode)  # for_each is bounded by its items
        if guarded and loop.next >= spec.max_iterations:
            _fail_loop(w, node, f"loop reached max_iterations ({loop.next})")
            return
        if not _start_iteration(w, node, spec, loop):
            return
    loop = _loop(w, node)
    if not loop.running and (loop.stopping or loop.next == loop.total):
        _complete(w, node, loop)


def _loop(w: Working, node: PlanNode) -> LoopState:
    loop = w.view.node(node.id).loop
    if loop is None:
        raise TypeError(f"loop node {node.id!r} has no loop state")
    return loop


def _may_start(w: Working, node: PlanNode, spec: LoopSpec, loop: LoopState) -> bool:
    meta = w.view.meta
    if meta.status != ExecutionStatus.RUNNING:
        return False
    if meta.failing and node.id not in meta.finally_nodes:
        return False
    if loop.total is not None and loop.next >= loop.total:
        return False
    limit = spec.concurrency if isinstance(spec, ForEachNode) else 1
    return len(loop.running) < limit


def _condition_holds(w: Working, node: PlanNode, loop: LoopState) -> bool:
    if node.condition is None:
        raise TypeError(f"while node {node.id!r} has no compiled condition")
    data = w.view.node(node.id).input
    context = build_context(w.plan, node.node_refs, w.view, data)
    previous = loop.results[-1] if loop.results else None
    context["index"] = loop.next
    context["iteration"] = {"index": loop.next, "output": previous, "outputs": loop.results}
    try:
        return evaluate_condition(node.condition, context)
    except ExpressionError as exc:
        stop_iterations(w, node.id, loop)
        set_active(w, node.id, False)
        fail(w, node.id, expression_failure(node, "condition", exc))
        return False


def _start_iteration(w: Working, node: PlanNode, spec: LoopSpec, loop: LoopState) -> bool:
    """Start iteration ``loop.next``; False when the loop failed instead."""
    meta = w.view.meta
    if meta.depth + 1 > w.options.max_depth:
        _fail_loop(w, node, f"loops nest deeper than {w.options.max_depth} levels")
        return False
    index = loop.next
    attempt = w.view.node(node.id).attempt
    for_each = isinstance(spec, ForEachNode)
    if for_each:
        (child_input,) = w.view.loop_values([loop_field(node.id, attempt, "i", index)])
        if child_input is ABSENT:
            raise TypeError(f"for_each node {node.id!r} has no item {index}")
        extra: dict[str, Any] = {"item": child_input, "index": index}
    else:
        child_input = w.view.node(node.id).input
        previous = loop.results[-1] if loop.results else None
        extra = {"index": index, "iteration": {"index": index, "output": previous}}
    inline = node.body is not None
    start = StartExecution(
        execution_id=child_execution_id(meta.id, node.id, attempt, index + 1),
        workflow_id=meta.workflow_id if inline else str(spec.workflow),
        version=meta.version if inline else None,
        input=child_input,
        priority=meta.priority,
        parent=ParentLink(execution_id=meta.id, node_id=node.id, iteration=index),
        depth=meta.depth + 1,
        body=body_path(meta.body, node.id) if inline else None,
        context=extra if inline else {},
        traceparent=meta.traceparent,
    )
    w.commands.append(StartChild(start))
    results = loop.results if for_each else [*loop.results, None]
    w.view.update_node(
        node.id,
        loop=loop.model_copy(
            update={"next": index + 1, "running": (*loop.running, index), "results": results}
        ),
    )
    return True


# ----------------------------------------------------------------- completion
def iteration_finished(w: Working, node: PlanNode, message: ChildFinished) -> None:
    """An iteration (child execution) of a loop node finished."""
    state = w.view.node(node.id)
    loop = state.loop
    index = message.iteration
    if loop is None or index is None or index not in loop.running:
        return
    if message.child_execution_id != child_execution_id(
        w.view.meta.id, node.id, state.attempt, index + 1
    ):
        return  # an iteration of the loop's run before a retry
    running = tuple(i for i in loop.running if i != index)
    if message.status != ExecutionStatus.SUCCEEDED:
        loop = loop.model_copy(update={"running": running})
        w.view.update_node(node.id, loop=loop)
        stop_iterations(w, node.id, loop)
        error = message.error
        text = f"iteration {index} {message.status}" + (f": {error.message}" if error else "")
        set_active(w, node.id, False)
        fail(
            w,
            node.id,
            ErrorInfo(
                type=error.type if error else str(message.status),
                message=text,
                node_id=node.id,
                attempt=state.attempt,
                details=error.model_dump() if error else None,
            ),
        )
        return
    results = loop.results
    if isinstance(loop_spec(node), ForEachNode):
        w.view.set_loop_values({loop_field(node.id, state.attempt, "r", index): message.output})
    else:
        results = list(results)
        results[index] = message.output
    loop = loop.model_copy(
        update={
            "running": running,
            "results": results,
            "done": loop.done + 1,
            "stopping": loop.stopping or message.control == "break",
        }
    )
    w.view.update_node(node.id, loop=loop)
    if loop.stopping:
        stop_iterations(w, node.id, loop)
        w.view.update_node(node.id, loop=loop.model_copy(update={"running": ()}))
    advance_loop(w, node)


def _complete(w: Working, node: PlanNode, loop: LoopState) -> None:
    if not isinstance(loop_spec(node), ForEachNode):
        # one iteration at a time: every started one completed, in order
        output = loop.results[: loop.done] if loop.stopping else list(loop.results)
    else:
        # a for_each's results, read once: those that completed, in index order
        attempt = w.view.node(node.id).attempt
        count = loop.next if loop.stopping else (loop.total or 0)
        values = w.view.loop_values(loop_field(node.id, attempt, "r", i) for i in range(count))
        if loop.stopping:
            output = [value for value in values if value is not ABSENT]
        else:
            output = [None if value is ABSENT else value for value in values]
    set_active(w, node.id, False)
    succeed(w, node.id, output)


def _fail_loop(w: Working, node: PlanNode, message: str) -> None:
    loop = w.view.node(node.id).loop
    if loop is not None:
        stop_iterations(w, node.id, loop)
    set_active(w, node.id, False)
    fail(w, node.id, _loop_error(node, message))


# ------------------------------------------------------------ break/continue
def end_iteration(w: Working, node: PlanNode, spec: BreakNode | ContinueNode, data: Any) -> None:
    """A break/continue node ran: end this body execution (the loop decides next)."""
    if w.view.meta.body is None:
        fail(w, node.id, _loop_error(node, f"'{spec.type}' only works inside a loop body"))
        return
    succeed(w, node.id, data)
    for active in tuple(w.view.active()):
        stop_node(w, active)
        w.view.update_node(active, status=NodeStatus.CANCELLED, wait=None)
    w.view.update_meta(loop_control=spec.type)
    output = data if isinstance(spec, BreakNode) else None
    finish(w, ExecutionStatus.SUCCEEDED, output=output)


def _loop_error(node: PlanNode, message: str) -> ErrorInfo:
    return ErrorInfo(
        type="LoopError", message=f"node {node.id!r}: {message}", node_id=node.id, attempt=1
    )
