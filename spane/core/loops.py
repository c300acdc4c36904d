"""Loops (for_each, while, repeat) and break/continue, as child executions. Pure.

Each iteration is a child execution of the loop's body (an inline body, addressed by
the path of loop node ids, or a registered workflow). Iterations start as capacity
frees (``concurrency`` for for_each, one at a time for while/repeat), so a loop over
thousands of items never floods the orchestrator.
"""

from __future__ import annotations

from typing import Any

from spane.compiler.plan import PORT_SUCCESS, PlanNode
from spane.core.context import build_context
from spane.core.control import expression_failure
from spane.core.ids import child_execution_id
from spane.core.step import Step
from spane.errors import ExpressionError
from spane.expressions.cel import evaluate_condition
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


def body_path(parent_body: str | None, node_id: str) -> str:
    """Address of an inline body: loop node ids from the workflow's top, ``/``-joined."""
    return f"{parent_body}/{node_id}" if parent_body else node_id


class LoopSteps(Step):
    """Loop handling, mixed into the decision core's node step."""

    # ----------------------------------------------------------------- start
    def start_loop(self, node: PlanNode, data: Any, context: dict[str, Any]) -> None:
        loop, error = self._initial_loop(node, context)
        if error is not None:
            self.settle(node.id, NodeStatus.FAILED, error=error)
            return
        assert loop is not None
        self.view.update_node(
            node.id, status=NodeStatus.WAITING, wait=WaitReason.CHILD, attempt=1, loop=loop
        )
        self.set_active(node.id, True)
        self.advance_loop(node)

    def _initial_loop(
        self, node: PlanNode, context: dict[str, Any]
    ) -> tuple[LoopState | None, ErrorInfo | None]:
        try:
            if node.type == "for_each":
                items = node.templates["items"].render(context)
                if not isinstance(items, list):
                    kind = type(items).__name__
                    return None, _loop_error(node, f"'items' must be a list, got {kind}")
                return LoopState(items=items, total=len(items), results=[None] * len(items)), None
            if node.type == "repeat":
                times = (
                    node.templates["times"].render(context)
                    if "times" in node.templates
                    else (
                        node.spec.times  # type: ignore[union-attr]
                    )
                )
                if isinstance(times, bool) or not isinstance(times, int) or times < 0:
                    return None, _loop_error(
                        node, f"'times' must be an integer >= 0, got {times!r}"
                    )
                return LoopState(total=times), None
            return LoopState(), None
        except ExpressionError as exc:
            field = "items" if node.type == "for_each" else "times"
            return None, expression_failure(node, field, exc)

    # -------------------------------------------------------------- progress
    def advance_loop(self, node: PlanNode) -> None:
        """Start iterations while allowed; settle the node when the loop is over."""
        while True:
            state = self.view.node(node.id)
            loop = state.loop
            assert loop is not None
            if loop.stopping or not self._may_start(node, loop):
                break
            if node.type == "while" and not self._condition_holds(node, loop):
                if self.view.node(node.id).status in (NodeStatus.FAILED,):
                    return
                self.view.update_node(node.id, loop=loop.model_copy(update={"total": loop.next}))
                continue
            guarded = node.type != "for_each"  # for_each is bounded by its items
            if guarded and loop.next >= node.spec.max_iterations:  # type: ignore[union-attr]
                self._fail_loop(node, f"loop reached max_iterations ({loop.next})")
                return
            self._start_iteration(node, loop)
        loop = self.view.node(node.id).loop
        assert loop is not None
        if not loop.running and (loop.stopping or loop.next == loop.total):
            self._complete(node, loop)

    def _may_start(self, node: PlanNode, loop: LoopState) -> bool:
        meta = self.view.meta
        if meta.status != ExecutionStatus.RUNNING:
            return False
        if meta.failing and node.id not in meta.finally_nodes:
            return False
        if loop.total is not None and loop.next >= loop.total:
            return False
        limit = node.spec.concurrency if node.type == "for_each" else 1  # type: ignore[union-attr]
        return len(loop.running) < limit

    def _condition_holds(self, node: PlanNode, loop: LoopState) -> bool:
        assert node.condition is not None
        data = self.view.node(node.id).input
        context = build_context(self.plan, node.node_refs, self.view, data)
        previous = loop.results[-1] if loop.results else None
        context["index"] = loop.next
        context["iteration"] = {"index": loop.next, "output": previous, "outputs": loop.results}
        try:
            return evaluate_condition(node.condition, context)
        except ExpressionError as exc:
            self._stop_running(node, loop)
            self.set_active(node.id, False)
            self.settle(
                node.id, NodeStatus.FAILED, error=expression_failure(node, "condition", exc)
            )
            return False

    def _start_iteration(self, node: PlanNode, loop: LoopState) -> None:
        meta = self.view.meta
        index = loop.next
        if node.type == "for_each":
            assert loop.items is not None
            child_input: Any = loop.items[index]
            extra: dict[str, Any] = {"item": child_input, "index": index}
        else:
            child_input = self.view.node(node.id).input
            previous = loop.results[-1] if loop.results else None
            extra = {"index": index, "iteration": {"index": index, "output": previous}}
        spec = node.spec
        inline = node.body is not None
        start = StartExecution(
            execution_id=child_execution_id(meta.id, node.id, 1, index + 1),
            workflow_id=meta.workflow_id if inline else str(spec.workflow),  # type: ignore[union-attr]
            version=meta.version if inline else None,
            input=child_input,
            priority=meta.priority,
            parent=ParentLink(execution_id=meta.id, node_id=node.id, iteration=index),
            depth=meta.depth + 1,
            body=body_path(meta.body, node.id) if inline else None,
            context=extra if inline else {},
        )
        if meta.depth + 1 > self.options.max_depth:
            self._fail_loop(node, f"loops nest deeper than {self.options.max_depth} levels")
            return
        self.commands.append(StartChild(start))
        results = loop.results if loop.items is not None else [*loop.results, None]
        self.view.update_node(
            node.id,
            loop=loop.model_copy(
                update={"next": index + 1, "running": (*loop.running, index), "results": results}
            ),
        )

    # ----------------------------------------------------------- completion
    def loop_child_finished(self, node: PlanNode, message: ChildFinished) -> None:
        state = self.view.node(node.id)
        loop = state.loop
        index = message.iteration
        if loop is None or index is None or index not in loop.running:
            return
        running = tuple(i for i in loop.running if i != index)
        if message.status != ExecutionStatus.SUCCEEDED:
            loop = loop.model_copy(update={"running": running})
            self.view.update_node(node.id, loop=loop)
            self._stop_running(node, loop)
            error = message.error
            text = f"iteration {index} {message.status}" + (f": {error.message}" if error else "")
            self.set_active(node.id, False)
            self.settle(
                node.id,
                NodeStatus.FAILED,
                error=ErrorInfo(
                    type=error.type if error else str(message.status),
                    message=text,
                    node_id=node.id,
                    attempt=state.attempt,
                    details=error.model_dump() if error else None,
                ),
            )
            return
        results = list(loop.results)
        if message.control != "continue" or index < len(results):
            results[index] = message.output
        loop = loop.model_copy(
            update={
                "running": running,
                "results": results,
                "completed": (*loop.completed, index),
                "stopping": loop.stopping or message.control == "break",
            }
        )
        self.view.update_node(node.id, loop=loop)
        if loop.stopping:
            self._stop_running(node, loop)
            loop = loop.model_copy(update={"running": ()})
            self.view.update_node(node.id, loop=loop)
        self.advance_loop(node)

    def _complete(self, node: PlanNode, loop: LoopState) -> None:
        if loop.stopping:
            done = sorted(loop.completed)
            output = [loop.results[i] for i in done]
        else:
            output = list(loop.results)
        self.set_active(node.id, False)
        self.settle(node.id, NodeStatus.SUCCEEDED, output=output, ports=(PORT_SUCCESS,))

    def _fail_loop(self, node: PlanNode, message: str) -> None:
        loop = self.view.node(node.id).loop
        if loop is not None:
            self._stop_running(node, loop)
        self.set_active(node.id, False)
        self.settle(node.id, NodeStatus.FAILED, error=_loop_error(node, message))

    def _stop_running(self, node: PlanNode, loop: LoopState) -> None:
        meta = self.view.meta
        for index in loop.running:
            self.stop_child(child_execution_id(meta.id, node.id, 1, index + 1))

    def stop_loop_children(self, node_id: str) -> None:
        """Cancel the children of a loop or sub-workflow node that is being stopped."""
        state = self.view.node(node_id)
        if state.loop is not None:
            self._stop_running(self.plan.node(node_id), state.loop)
        elif state.children:
            self.stop_child(state.children[-1])

    # -------------------------------------------------------- break/continue
    def end_iteration(self, node: PlanNode, data: Any) -> None:
        """A break/continue node ran: end this body execution (the loop decides next)."""
        if self.view.meta.body is None:
            error = _loop_error(node, f"'{node.type}' only works inside a loop body")
            self.settle(node.id, NodeStatus.FAILED, error=error)
            return
        self.settle(node.id, NodeStatus.SUCCEEDED, output=data, ports=(PORT_SUCCESS,))
        meta = self.view.meta
        for active in meta.active:
            self.stop_node(active)
            self.view.update_node(active, status=NodeStatus.CANCELLED, wait=None)
        self.view.update_meta(loop_control=node.type)
        output = data if node.type == "break" else None
        self.finish(ExecutionStatus.SUCCEEDED, output=output)


def _loop_error(node: PlanNode, message: str) -> ErrorInfo:
    return ErrorInfo(
        type="LoopError", message=f"node {node.id!r}: {message}", node_id=node.id, attempt=1
    )
