"""The graph-walking half of the decision core: settling nodes, propagating ports
through joins, failing, finishing. Pure.

:mod:`spane.core.decisions` adds how nodes run and how each event is handled.
The settle/propagate loop uses a work list, not recursion, so skip propagation down
long chains is bounded by the graph, not by Python's stack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from spane.compiler.plan import PORT_ALWAYS, PORT_ERROR, Plan, PlanNode
from spane.core.context import build_context, default_output
from spane.core.ids import task_id, timer_id
from spane.core.joins import Verdict, join_verdict
from spane.core.options import CoreOptions
from spane.errors import ExpressionError
from spane.schemas.commands import (
    CancelChild,
    CancelTask,
    CancelTimer,
    Command,
    Decision,
    EmitEvent,
    ExecutionFinished,
    NotifyParent,
    Rejection,
    ScheduleTimer,
)
from spane.schemas.events import execution_event, node_event
from spane.schemas.messages import ChildFinished, StartExecution
from spane.schemas.state import (
    TERMINAL_EXECUTION_STATUSES,
    TERMINAL_NODE_STATUSES,
    ErrorInfo,
    ExecutionMeta,
    ExecutionStatus,
    NodeStatus,
    Timer,
    TimerKind,
)
from spane.schemas.view import ExecutionView


class Step(ABC):
    """Working state of one decision; the node-running layer subclasses it."""

    def __init__(self, plan: Plan, view: ExecutionView, now: float, options: CoreOptions):
        self.plan = plan
        self.view = view
        self.now = now
        self.options = options
        self.commands: list[Command] = []
        self.rejection: Rejection | None = None
        self._work: deque[tuple[str, bool]] = deque()

    # ------------------------------------------------------------------ output
    def decision(self) -> Decision:
        return Decision(self.commands, self.rejection)

    def emit_execution(self, status: str, seq: int | None = None, **extra: Any) -> None:
        """``seq`` tells repeated statuses apart (the n-th pause / resume)."""
        meta = self.view.meta
        key, event = execution_event(
            execution_id=meta.id,
            workflow_id=meta.workflow_id,
            version=meta.version,
            status=status,
            now=self.now,
            extra=_parent_extra(meta) | extra,
            seq=seq,
        )
        self.commands.append(EmitEvent(key, event, node_level=False))

    def emit_node(self, node_id: str, status: str, **extra: Any) -> None:
        if not self.options.node_events:
            return
        meta = self.view.meta
        key, event = node_event(
            execution_id=meta.id,
            workflow_id=meta.workflow_id,
            version=meta.version,
            node_id=node_id,
            attempt=self.view.node(node_id).attempt,
            status=status,
            now=self.now,
            extra=extra,
        )
        self.commands.append(EmitEvent(key, event, node_level=True))

    # ------------------------------------------------------------ bookkeeping
    @property
    def terminal(self) -> bool:
        return self.view.meta.status in TERMINAL_EXECUTION_STATUSES

    def set_active(self, node_id: str, active: bool) -> None:
        current = self.view.meta.active
        if active and node_id not in current:
            self.view.update_meta(active=(*current, node_id))
        elif not active and node_id in current:
            self.view.update_meta(active=tuple(n for n in current if n != node_id))

    def schedule(self, kind: TimerKind, node_id: str | None, attempt: int, at: float) -> None:
        meta = self.view.meta
        timer = Timer(
            id=timer_id(kind, meta.id, node_id, attempt),
            execution_id=meta.id,
            kind=kind,
            fire_at=at,
            node_id=node_id,
            attempt=attempt,
        )
        self.commands.append(ScheduleTimer(timer))
        if node_id is not None and kind is not TimerKind.LIVENESS:
            armed = self.view.node(node_id).timers
            self.view.update_node(node_id, timers={**armed, str(kind): at})

    def cancel_timer(self, kind: TimerKind, node_id: str | None, attempt: int = 0) -> None:
        self.commands.append(CancelTimer(timer_id(kind, self.view.meta.id, node_id, attempt)))
        self.disarm(kind, node_id)

    def disarm(self, kind: TimerKind, node_id: str | None) -> None:
        if node_id is not None and str(kind) in self.view.node(node_id).timers:
            armed = dict(self.view.node(node_id).timers)
            del armed[str(kind)]
            self.view.update_node(node_id, timers=armed)

    def current_timer(self, timer: Timer) -> bool:
        """Whether a node timer that fired is the one armed now. A stale firing (a timer
        replaced by a heartbeat, or one a replayed command rolled back) is ignored, and
        the armed deadline is restored in the store in case the replay overwrote it."""
        if timer.node_id is None or timer.kind is TimerKind.LIVENESS:
            return True
        armed = self.view.node(timer.node_id).timers.get(str(timer.kind))
        if armed is None:
            return False
        if armed != timer.fire_at:
            self.schedule(timer.kind, timer.node_id, timer.attempt, armed)
            return False
        self.disarm(timer.kind, timer.node_id)
        return True

    # ------------------------------------------------------------- settling
    def settle(
        self,
        node_id: str,
        status: NodeStatus,
        *,
        output: Any = None,
        error: ErrorInfo | None = None,
        ports: tuple[str, ...] = (),
    ) -> None:
        """Record a node's final outcome and propagate its ports to its children."""
        state = self.view.node(node_id)
        if state.status in TERMINAL_NODE_STATUSES:
            return
        if status == NodeStatus.FAILED:
            ports = (*ports, PORT_ERROR)
        fired = (*ports, PORT_ALWAYS)
        self.view.update_node(
            node_id,
            status=status,
            output=output,
            error=error,
            fired=fired,
            wait=None,
            finished_at=self.now,
        )
        self.set_active(node_id, False)
        self.view.update_meta(unsettled=self.view.meta.unsettled - 1)
        self._emit_settled(node_id, status, output, error)
        node = self.plan.node(node_id)
        if status == NodeStatus.FAILED and not node.handles_error:
            self.begin_failing(error or ErrorInfo(type="Error", message="failed", node_id=node_id))
        self._propagate(node, fired)

    def _emit_settled(
        self, node_id: str, status: NodeStatus, output: Any, error: ErrorInfo | None
    ) -> None:
        if status == NodeStatus.SUCCEEDED:
            self.emit_node(node_id, str(status), output=output)
        elif error is not None:
            self.emit_node(node_id, str(status), error=error.model_dump())
        else:
            self.emit_node(node_id, str(status))

    def _propagate(self, node: PlanNode, fired: tuple[str, ...]) -> None:
        for edge in node.children:
            child = self.view.node(edge.target)
            if child.status != NodeStatus.PENDING:
                continue
            edges = {**child.edges, edge.key: edge.port in fired}
            self.view.update_node(edge.target, edges=edges)
            verdict = join_verdict(self.plan.node(edge.target), edges)
            if verdict is not Verdict.WAIT:
                self.view.update_node(edge.target, status=NodeStatus.READY)
                self._work.append((edge.target, verdict is Verdict.FIRE))

    def resume_deferred(self) -> None:
        """Activations that came due while paused run now, in order."""
        deferred = self.view.meta.deferred
        self.view.update_meta(deferred=())
        self._work.extend((node_id, True) for node_id in deferred)

    def activate_later(self, node_id: str) -> None:
        """Queue a node whose join resolved (roots at start)."""
        self.view.update_node(node_id, status=NodeStatus.READY)
        self._work.append((node_id, True))

    def run(self) -> None:
        """Process the work list, fill free capacity, then check for completion."""
        while True:
            while self._work:
                node_id, fire = self._work.popleft()
                if self.terminal:
                    self._work.clear()
                    break
                if fire and self.view.meta.status == ExecutionStatus.PAUSED:
                    deferred = self.view.meta.deferred
                    self.view.update_meta(deferred=(*deferred, node_id))  # runs on resume
                elif fire:
                    self.activate(node_id)
                else:
                    self.settle(node_id, NodeStatus.SKIPPED)
            if not self.drain_queue():
                break
        self.finish_if_done()

    @abstractmethod
    def activate(self, node_id: str) -> None:
        """Run a node whose join fired (guard, input, then by type)."""

    @abstractmethod
    def drain_queue(self) -> bool:
        """Dispatch queued nodes while capacity allows; True if any started."""

    @abstractmethod
    def stop_node(self, node_id: str) -> None:
        """Cancel whatever an active node is waiting on (task, timers, children)."""

    # -------------------------------------------------------- failure / end
    def begin_failing(self, error: ErrorInfo) -> None:
        """An unhandled failure: cancel what runs; only finally branches may start."""
        meta = self.view.meta
        if meta.failing or self.terminal:
            return
        self.view.update_meta(failing=True, error=error)
        finally_nodes = set(meta.finally_nodes)
        for node_id in meta.active:
            if node_id not in finally_nodes:
                self.stop_node(node_id)
                self.settle(node_id, NodeStatus.CANCELLED, error=_cancelled(node_id, error))
        for node_id in self.view.meta.queue:
            if node_id not in finally_nodes:
                self.view.update_meta(queue=tuple(q for q in self.view.meta.queue if q != node_id))
                self.settle(node_id, NodeStatus.CANCELLED, error=_cancelled(node_id, error))

    def finish_if_done(self) -> None:
        meta = self.view.meta
        if self.terminal or meta.status == ExecutionStatus.PENDING:
            return
        if meta.failing:
            if not meta.active and not meta.queue and not meta.deferred:
                self.finish(ExecutionStatus.FAILED, error=meta.error)
            return
        if meta.unsettled > 0:
            return
        output, error = self._output()
        if error is not None:
            self.finish(ExecutionStatus.FAILED, error=error)
        else:
            self.finish(ExecutionStatus.SUCCEEDED, output=output)

    def _output(self) -> tuple[Any, ErrorInfo | None]:
        if self.plan.output is None:
            return default_output(self.plan, self.view), None
        context = build_context(self.plan, self.plan.output_refs, self.view, None)
        try:
            return self.plan.output.render(context), None
        except ExpressionError as exc:
            return None, ErrorInfo(type="ExpressionError", message=f"workflow output: {exc}")

    def finish(
        self, status: ExecutionStatus, *, output: Any = None, error: ErrorInfo | None = None
    ) -> None:
        meta = self.view.update_meta(
            status=status,
            output=output,
            error=error,
            finished_at=self.now,
            active=(),
            queue=(),
            deferred=(),
            running=0,
            signals={},
            held=(),
        )
        if self.plan.timeout is not None:
            self.cancel_timer(TimerKind.EXECUTION_TIMEOUT, None)
        extra: dict[str, Any] = {"output": output} if status == ExecutionStatus.SUCCEEDED else {}
        if error is not None:
            extra["error"] = error.model_dump()
        self.emit_execution(str(status), **extra)
        self.commands.append(
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
            self.commands.append(NotifyParent(message))

    def terminate(self, status: ExecutionStatus, error: ErrorInfo) -> None:
        """Cancel or time out: stop everything, run no finally branches."""
        meta = self.view.meta
        for node_id in (*meta.active, *meta.queue, *meta.deferred):
            self.stop_node(node_id)
            self.view.update_node(
                node_id,
                status=NodeStatus.CANCELLED,
                error=_cancelled(node_id, error),
                finished_at=self.now,
                wait=None,
            )
            self.emit_node(node_id, str(NodeStatus.CANCELLED))
        self._work.clear()
        self.finish(status, error=error)

    def stop_child(self, child_id: str) -> None:
        self.commands.append(CancelChild(child_id))

    def stop_task(self, node_id: str, attempt: int) -> None:
        meta = self.view.meta
        self.commands.append(CancelTask(task_id(meta.id, node_id, attempt), meta.id, node_id))

    def is_finally(self, node: PlanNode) -> bool:
        """Whether a node may start while the execution is failing."""
        edges = self.view.node(node.id).edges
        finally_nodes = self.view.meta.finally_nodes
        return any(
            edges.get(edge.key) and (edge.port == PORT_ALWAYS or edge.source in finally_nodes)
            for edge in node.parents
        )


def _cancelled(node_id: str, cause: ErrorInfo) -> ErrorInfo:
    return ErrorInfo(type="Cancelled", message=f"cancelled: {cause.message}", node_id=node_id)


def _parent_extra(meta: ExecutionMeta) -> dict[str, Any]:
    if meta.parent is None:
        return {}
    return {"parent_execution_id": meta.parent.execution_id}


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
    )
