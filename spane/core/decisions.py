"""The decision core: one event + the execution's state -> state changes + commands. Pure.

``begin`` starts an execution, ``decide`` handles every later event. Both take the
time (``now``) as an argument, never raise for domain failures (a node failing, a
signal nobody waits for), and return a :class:`Decision`; the adapter persists the
view's changes atomically and then executes the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema

from spane.compiler.plan import PORT_SUCCESS, NodeKind, Plan, PlanNode
from spane.core.context import build_context, gather_data
from spane.core.control import INLINE, Outcome, delay_fire_at, expression_failure
from spane.core.ids import child_execution_id, task_id
from spane.core.loops import LoopSteps
from spane.core.options import CoreOptions
from spane.core.retry import retry_delay, should_retry
from spane.core.step import new_meta
from spane.errors import ExpressionError
from spane.expressions.cel import evaluate_condition
from spane.schemas.commands import Decision, DispatchTask, Rejection, StartChild
from spane.schemas.messages import (
    ActivateExecution,
    AttemptLost,
    CancelCommand,
    ChildFinished,
    InboxMessage,
    PauseCommand,
    ResumeCommand,
    SignalCommand,
    StartExecution,
    TaskFailure,
    TaskHeartbeat,
    TaskMessage,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import (
    ErrorInfo,
    ExecutionStatus,
    NodeStatus,
    ParentLink,
    Timer,
    TimerKind,
    WaitReason,
)
from spane.schemas.view import ExecutionView

SECRETS = frozenset({"secrets"})
MAX_LOST_ATTEMPTS = 5
"""A task that takes its worker down this many times fails (it is the task's fault)."""
_WAITING_TYPES = frozenset({"delay", "wait_for_signal"})


class NodeStep(LoopSteps):
    """How nodes run: guards, inputs, inline control nodes, dispatch, timers, children."""

    # ------------------------------------------------------------ activation
    def activate(self, node_id: str) -> None:
        node = self.plan.node(node_id)
        meta = self.view.meta
        if meta.failing:
            if not self.is_finally(node):
                self.settle(node_id, NodeStatus.CANCELLED, error=_not_started(node_id, meta.error))
                return
            self.view.update_meta(finally_nodes=(*meta.finally_nodes, node_id))
        data = gather_data(node, self.view)
        context = build_context(self.plan, node.node_refs, self.view, data)
        if node.guard is not None:
            try:
                if not evaluate_condition(node.guard, context):
                    self.settle(node_id, NodeStatus.SKIPPED)
                    return
            except ExpressionError as exc:
                self.settle(node_id, NodeStatus.FAILED, error=expression_failure(node, "when", exc))
                return
        if node.input is not None:
            try:
                defer = SECRETS if node.kind is NodeKind.TASK else frozenset()
                data = node.input.render(context, defer=defer)
            except ExpressionError as exc:
                self.fail_now(node, expression_failure(node, "input", exc))
                return
            context["data"] = data
        self.view.update_node(node_id, input=data, started_at=self.now)
        self._start(node, data, context)

    def _start(self, node: PlanNode, data: Any, context: dict[str, Any]) -> None:
        if node.kind is NodeKind.TASK or node.type == "sub_workflow":
            self.enqueue_or_dispatch(node.id)
            return
        self.view.update_node(node.id, attempt=1)
        if node.type in INLINE:
            self.emit_node(node.id, "started")
            self.apply_outcome(node, INLINE[node.type](node, data, context))
        elif node.type in _WAITING_TYPES:
            self.emit_node(node.id, "started")
            self._wait(node, context)
        elif node.type in ("break", "continue"):
            self.end_iteration(node, data)
        else:
            self.emit_node(node.id, "started")
            self.start_loop(node, data, context)

    def apply_outcome(self, node: PlanNode, outcome: Outcome) -> None:
        if outcome.set_vars:
            self.view.update_meta(vars={**self.view.meta.vars, **outcome.set_vars})
        if outcome.error is not None:
            self.fail_now(node, outcome.error)
        else:
            self.settle(node.id, NodeStatus.SUCCEEDED, output=outcome.output, ports=outcome.ports)

    def fail_now(self, node: PlanNode, error: ErrorInfo) -> None:
        """Fail a node for good (no retry): expression errors, fail nodes, bad config."""
        self.settle(node.id, NodeStatus.FAILED, error=error)

    # ------------------------------------------------------------ waiting nodes
    def _wait(self, node: PlanNode, context: dict[str, Any]) -> None:
        if node.type == "delay":
            try:
                fire_at = delay_fire_at(node, context, self.now)
            except (ExpressionError, ValueError) as exc:
                error = ErrorInfo(type="ValueError", message=f"node {node.id!r}: until: {exc}")
                self.fail_now(node, error.model_copy(update={"node_id": node.id, "attempt": 1}))
                return
            if fire_at <= self.now:
                self.settle(
                    node.id,
                    NodeStatus.SUCCEEDED,
                    output=self.view.node(node.id).input,
                    ports=(PORT_SUCCESS,),
                )
                return
            self.view.update_node(
                node.id, status=NodeStatus.WAITING, wait=WaitReason.DELAY, attempt=1
            )
            self.set_active(node.id, True)
            self.schedule(TimerKind.DELAY, node.id, 1, fire_at)
            return
        signal = str(node.spec.signal)  # type: ignore[union-attr]
        waiting = self.view.meta.signals.get(signal, ())
        self.view.update_meta(signals={**self.view.meta.signals, signal: (*waiting, node.id)})
        self.view.update_node(node.id, status=NodeStatus.WAITING, wait=WaitReason.SIGNAL, attempt=1)
        self.set_active(node.id, True)
        if node.timeout is not None:
            self.schedule(TimerKind.SIGNAL_TIMEOUT, node.id, 1, self.now + node.timeout)

    def _unregister_signal(self, node_id: str) -> None:
        signals = {
            name: tuple(n for n in nodes if n != node_id)
            for name, nodes in self.view.meta.signals.items()
        }
        self.view.update_meta(signals={name: nodes for name, nodes in signals.items() if nodes})

    # -------------------------------------------------------------- dispatch
    def enqueue_or_dispatch(self, node_id: str) -> None:
        meta = self.view.meta
        limit = self.plan.max_concurrency
        full = limit is not None and meta.running >= limit
        if meta.status == ExecutionStatus.PAUSED or full:
            self.view.update_node(node_id, status=NodeStatus.READY, wait=None)
            priority = self.plan.node(node_id).priority
            queue = [*meta.queue]
            position = len(queue)
            while position > 0 and self.plan.node(queue[position - 1]).priority < priority:
                position -= 1
            queue.insert(position, node_id)
            self.view.update_meta(queue=tuple(queue))
            return
        self.dispatch(node_id)

    def drain_queue(self) -> bool:
        started = False
        limit = self.plan.max_concurrency
        while self.view.meta.queue and self.view.meta.status == ExecutionStatus.RUNNING:
            if limit is not None and self.view.meta.running >= limit:
                break
            node_id, *rest = self.view.meta.queue
            self.view.update_meta(queue=tuple(rest))
            self.dispatch(node_id)
            started = True
        return started

    def dispatch(self, node_id: str) -> None:
        """Start the next attempt of a task node (or sub-workflow)."""
        node = self.plan.node(node_id)
        state = self.view.node(node_id)
        attempt = state.attempt + 1
        if node.type == "sub_workflow":
            self._start_child(node, attempt)
            return
        try:
            task = self._task_message(node, attempt, state.input)
        except ExpressionError as exc:
            self.view.update_node(node_id, attempt=attempt)
            self.fail_now(node, expression_failure(node, _failed_field(exc), exc))
            return
        self.view.update_node(node_id, status=NodeStatus.RUNNING, attempt=attempt, wait=None)
        meta = self.view.meta
        active = meta.active if node_id in meta.active else (*meta.active, node_id)
        self.view.update_meta(running=meta.running + 1, active=active)
        self.commands.append(DispatchTask(task))
        if node.timeout is not None:
            self.schedule(TimerKind.ATTEMPT_TIMEOUT, node_id, attempt, self.now + node.timeout)
        self.schedule(TimerKind.LIVENESS, node_id, attempt, self.now + self.options.liveness)
        self.emit_node(node_id, "started")

    def end_attempt(self, node: PlanNode, attempt: int) -> None:
        """A running attempt is over (result, timeout, loss, stop): free its slot, timers."""
        if node.timeout is not None:
            self.cancel_timer(TimerKind.ATTEMPT_TIMEOUT, node.id, attempt)
        self.cancel_timer(TimerKind.LIVENESS, node.id, attempt)
        meta = self.view.meta
        self.view.update_meta(
            running=max(meta.running - 1, 0),
            active=tuple(n for n in meta.active if n != node.id),
        )

    def _task_message(self, node: PlanNode, attempt: int, data: Any) -> TaskMessage:
        meta = self.view.meta
        context = build_context(self.plan, node.node_refs, self.view, data)
        rendered = {
            name: _render_field(template, context, name)
            for name, template in node.templates.items()
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
            function=getattr(node.spec, "function", None),
            request=rendered.get("request"),
            expect=rendered.get("expect"),
            config=rendered.get("config"),
            timeout=node.timeout,
            priority=max(node.priority, meta.priority),
            dispatched_at=self.now,
        )

    def _start_child(self, node: PlanNode, attempt: int) -> None:
        meta = self.view.meta
        if meta.depth + 1 > self.options.max_depth:
            self.view.update_node(node.id, attempt=attempt)
            self.fail_now(
                node,
                ErrorInfo(
                    type="DepthLimitExceeded",
                    message=f"node {node.id!r}: sub-workflows nest deeper than "
                    f"{self.options.max_depth} levels",
                    node_id=node.id,
                    attempt=attempt,
                ),
            )
            return
        child_id = child_execution_id(meta.id, node.id, attempt)
        spec = node.spec
        start = StartExecution(
            execution_id=child_id,
            workflow_id=str(spec.workflow),  # type: ignore[union-attr]
            version=spec.version,  # type: ignore[union-attr]
            input=self.view.node(node.id).input,
            priority=meta.priority,
            parent=ParentLink(execution_id=meta.id, node_id=node.id),
            depth=meta.depth + 1,
        )
        self.commands.append(StartChild(start))
        state = self.view.node(node.id)
        self.view.update_node(node.id, attempt=attempt, children=(*state.children, child_id))
        self.emit_node(node.id, "started")
        if not spec.wait:  # type: ignore[union-attr]
            self.settle(
                node.id,
                NodeStatus.SUCCEEDED,
                output={"execution_id": child_id},
                ports=(PORT_SUCCESS,),
            )
            return
        self.view.update_node(node.id, status=NodeStatus.WAITING, wait=WaitReason.CHILD)
        self.set_active(node.id, True)
        if node.timeout is not None:
            self.schedule(TimerKind.CHILD_TIMEOUT, node.id, attempt, self.now + node.timeout)

    # ------------------------------------------------------------ attempts
    def attempt_failed(self, node: PlanNode, attempt: int, failure: TaskFailure) -> None:
        error = ErrorInfo(
            type=failure.type,
            message=failure.message,
            node_id=node.id,
            attempt=attempt,
            details=failure.details,
        )
        if self.view.meta.failing and node.id not in self.view.meta.finally_nodes:
            self.settle(node.id, NodeStatus.FAILED, error=error)
            return
        if should_retry(node.retry, failure, attempt - self.view.node(node.id).lost):
            seed = task_id(self.view.meta.id, node.id, attempt)
            delay = retry_delay(node.retry, failure, attempt, seed)
            self.view.update_node(
                node.id, status=NodeStatus.WAITING, wait=WaitReason.RETRY, error=error
            )
            self.set_active(node.id, True)
            self.schedule(TimerKind.RETRY, node.id, attempt, self.now + delay)
            self.emit_node(node.id, "retrying", error=error.model_dump(), delay=delay)
            return
        self.settle(node.id, NodeStatus.FAILED, error=error)

    def stop_node(self, node_id: str) -> None:
        state = self.view.node(node_id)
        node = self.plan.node(node_id)
        if state.status == NodeStatus.RUNNING:
            self.stop_task(node_id, state.attempt)
            self.end_attempt(node, state.attempt)
        elif state.wait is WaitReason.RETRY:
            self.cancel_timer(TimerKind.RETRY, node_id, state.attempt)
        elif state.wait is WaitReason.DELAY:
            self.cancel_timer(TimerKind.DELAY, node_id, state.attempt)
        elif state.wait is WaitReason.SIGNAL:
            self._unregister_signal(node_id)
            if node.timeout is not None:
                self.cancel_timer(TimerKind.SIGNAL_TIMEOUT, node_id, state.attempt)
        elif state.wait is WaitReason.CHILD:
            self.stop_loop_children(node_id)
            if node.timeout is not None:
                self.cancel_timer(TimerKind.CHILD_TIMEOUT, node_id, state.attempt)

    # ------------------------------------------------------------- events
    def on_result(self, message: TaskResult) -> None:
        if message.node_id not in self.plan.nodes:
            return
        state = self.view.node(message.node_id)
        if state.status != NodeStatus.RUNNING or state.attempt != message.attempt:
            return  # stale: a superseded or cancelled attempt
        node = self.plan.node(message.node_id)
        self.end_attempt(node, message.attempt)
        if message.ok:
            self.settle(node.id, NodeStatus.SUCCEEDED, output=message.output, ports=(PORT_SUCCESS,))
        else:
            failure = message.error or TaskFailure(type="Error", message="task failed")
            self.attempt_failed(node, message.attempt, failure)

    def on_heartbeat(self, message: TaskHeartbeat) -> None:
        if message.node_id not in self.plan.nodes:
            return
        node = self.plan.node(message.node_id)
        state = self.view.node(node.id)
        live = state.status == NodeStatus.RUNNING and state.attempt == message.attempt
        if live and node.timeout is not None:
            self.schedule(
                TimerKind.ATTEMPT_TIMEOUT, node.id, message.attempt, self.now + node.timeout
            )

    def on_lost(self, message: AttemptLost) -> None:
        """The worker running an attempt died: run it again, without using a retry."""
        if message.node_id not in self.plan.nodes:
            return
        node = self.plan.node(message.node_id)
        state = self.view.node(node.id)
        if state.status != NodeStatus.RUNNING or state.attempt != message.attempt:
            return
        self.stop_task(node.id, state.attempt)
        self.end_attempt(node, state.attempt)
        error = ErrorInfo(
            type="WorkerLost", message=message.reason, node_id=node.id, attempt=state.attempt
        )
        if state.lost + 1 >= MAX_LOST_ATTEMPTS:
            text = f"{message.reason}; {MAX_LOST_ATTEMPTS} attempts lost their worker"
            self.settle(
                node.id, NodeStatus.FAILED, error=error.model_copy(update={"message": text})
            )
            return
        self.view.update_node(node.id, lost=state.lost + 1, error=error)
        self.emit_node(node.id, "retrying", error=error.model_dump(), delay=0)
        self.enqueue_or_dispatch(node.id)

    def on_timer(self, timer: Timer) -> None:
        if timer.kind is TimerKind.EXECUTION_TIMEOUT:
            error = ErrorInfo(type="Timeout", message="execution timed out")
            self.terminate(ExecutionStatus.TIMED_OUT, error)
            return
        if self.view.meta.status == ExecutionStatus.PAUSED:
            self.view.update_meta(held=(*self.view.meta.held, timer))
            return
        self.fire_timer(timer)

    def fire_timer(self, timer: Timer) -> None:
        node_id = timer.node_id
        if node_id is None or node_id not in self.plan.nodes:
            return
        state = self.view.node(node_id)
        node = self.plan.node(node_id)
        if state.attempt != timer.attempt or not self.current_timer(timer):
            return
        if timer.kind is TimerKind.RETRY and state.wait is WaitReason.RETRY:
            self.set_active(node_id, False)
            self.enqueue_or_dispatch(node_id)
        elif timer.kind is TimerKind.ATTEMPT_TIMEOUT and state.status == NodeStatus.RUNNING:
            self.stop_task(node_id, state.attempt)
            self.end_attempt(node, state.attempt)
            message = f"attempt {state.attempt} of node {node_id!r} timed out after {node.timeout}s"
            self.attempt_failed(node, state.attempt, TaskFailure(type="Timeout", message=message))
        elif timer.kind is TimerKind.DELAY and state.wait is WaitReason.DELAY:
            self.settle(node_id, NodeStatus.SUCCEEDED, output=state.input, ports=(PORT_SUCCESS,))
        elif timer.kind is TimerKind.SIGNAL_TIMEOUT and state.wait is WaitReason.SIGNAL:
            self._unregister_signal(node_id)
            message = f"no signal {node.spec.signal!r} within {node.timeout}s"  # type: ignore[union-attr]
            error = ErrorInfo(type="Timeout", message=message, node_id=node_id, attempt=1)
            self.settle(node_id, NodeStatus.FAILED, error=error)
        elif timer.kind is TimerKind.CHILD_TIMEOUT and state.wait is WaitReason.CHILD:
            self.stop_loop_children(node_id)
            self.set_active(node_id, False)
            message = f"node {node_id!r}: child execution did not finish within {node.timeout}s"
            self.attempt_failed(node, state.attempt, TaskFailure(type="Timeout", message=message))

    def on_child_finished(self, message: ChildFinished) -> None:
        if message.node_id not in self.plan.nodes:
            return
        node = self.plan.node(message.node_id)
        state = self.view.node(node.id)
        if state.wait is not WaitReason.CHILD:
            return
        if node.type != "sub_workflow":
            self.loop_child_finished(node, message)
            return
        if message.child_execution_id != child_execution_id(
            self.view.meta.id, node.id, state.attempt
        ):
            return  # a superseded attempt's child (timed out and retried)
        if node.timeout is not None:
            self.cancel_timer(TimerKind.CHILD_TIMEOUT, node.id, state.attempt)
        self.set_active(node.id, False)
        if message.status == ExecutionStatus.SUCCEEDED:
            self.settle(node.id, NodeStatus.SUCCEEDED, output=message.output, ports=(PORT_SUCCESS,))
            return
        child_error = message.error
        failure = TaskFailure(
            type=child_error.type if child_error else str(message.status),
            message=f"child execution {message.child_execution_id} {message.status}"
            + (f": {child_error.message}" if child_error else ""),
            details=child_error.model_dump() if child_error else None,
        )
        self.attempt_failed(node, state.attempt, failure)

    def on_signal(self, message: SignalCommand) -> None:
        meta = self.view.meta
        if self.terminal:
            self.rejection = Rejection(f"execution {meta.id} is {meta.status}")
            return
        waiting = meta.signals.get(message.name, ())
        if not waiting:
            names = ", ".join(sorted(meta.signals)) or "none"
            self.rejection = Rejection(
                f"no node of execution {meta.id} is waiting for signal {message.name!r} "
                f"(waiting for: {names})"
            )
            return
        for node_id in waiting:
            schema = self.plan.node(node_id).spec.signal_schema  # type: ignore[union-attr]
            if schema is None:
                continue
            try:
                jsonschema.validate(message.data, schema)
            except jsonschema.ValidationError as exc:
                path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
                self.rejection = Rejection(
                    f"signal {message.name!r} payload refused by node {node_id!r}: "
                    f"at {path}: {exc.message}"
                )
                return
        for node_id in waiting:
            node = self.plan.node(node_id)
            self._unregister_signal(node_id)
            if node.timeout is not None:
                self.cancel_timer(TimerKind.SIGNAL_TIMEOUT, node_id, 1)
            self.settle(node_id, NodeStatus.SUCCEEDED, output=message.data, ports=(PORT_SUCCESS,))

    def start_roots(self) -> None:
        """Emit ``started``, arm the execution timeout, queue the roots."""
        meta = self.view.meta
        self.emit_execution("started", input=meta.input)
        if self.plan.timeout is not None:
            self.view.update_meta(deadline=self.now + self.plan.timeout)
            self.schedule(TimerKind.EXECUTION_TIMEOUT, None, 0, self.now + self.plan.timeout)
        for root in self.plan.roots:
            self.activate_later(root)

    def on_activate(self) -> None:
        meta = self.view.meta
        if meta.status != ExecutionStatus.PENDING:
            return  # already running (a redelivered activation)
        self.view.update_meta(status=ExecutionStatus.RUNNING)
        self.start_roots()

    def on_pause(self) -> None:
        meta = self.view.meta
        if meta.status != ExecutionStatus.RUNNING:
            self.rejection = Rejection(f"execution {meta.id} is {meta.status}, not running")
            return
        meta = self.view.update_meta(status=ExecutionStatus.PAUSED, pauses=meta.pauses + 1)
        self.emit_execution("paused", seq=meta.pauses)

    def on_resume(self) -> None:
        meta = self.view.meta
        if meta.status != ExecutionStatus.PAUSED:
            self.rejection = Rejection(f"execution {meta.id} is {meta.status}, not paused")
            return
        held = meta.held
        self.view.update_meta(status=ExecutionStatus.RUNNING, held=())
        self.emit_execution("resumed", seq=meta.pauses)
        self.resume_deferred()
        for timer in held:
            self.fire_timer(timer)
        for node_id in self.view.meta.active:
            if self.view.node(node_id).loop is not None:
                self.advance_loop(self.plan.node(node_id))  # iterations held while paused

    def on_cancel(self, message: CancelCommand) -> None:
        meta = self.view.meta
        if self.terminal:
            self.rejection = Rejection(f"execution {meta.id} is already {meta.status}")
            return
        reason = message.reason or "cancelled by request"
        self.terminate(ExecutionStatus.CANCELLED, ErrorInfo(type="Cancelled", message=reason))


def _render_field(template: Any, context: dict[str, Any], name: str) -> Any:
    try:
        return template.render(context, defer=SECRETS)
    except ExpressionError as exc:
        raise type(exc)(f"{name}: {exc}") from exc


def _failed_field(exc: ExpressionError) -> str:
    text = str(exc)
    return text.split(":", 1)[0] if ":" in text else "request"


def _not_started(node_id: str, cause: ErrorInfo | None) -> ErrorInfo:
    reason = cause.message if cause else "execution failing"
    return ErrorInfo(type="Cancelled", message=f"not started: {reason}", node_id=node_id)


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
    step = NodeStep(plan, view, now, options or CoreOptions())
    if not pending:
        step.start_roots()
        step.run()
    return view, step.decision()


def decide(
    plan: Plan,
    view: ExecutionView,
    message: InboxMessage,
    now: float,
    options: CoreOptions | None = None,
) -> Decision:
    """Apply one event to an execution; ``view`` records the changes."""
    step = NodeStep(plan, view, now, options or CoreOptions())
    engine_event = (
        TaskResult | TaskHeartbeat | TimerFired | ChildFinished | ActivateExecution | AttemptLost
    )
    if step.terminal and isinstance(message, engine_event):
        return step.decision()  # late news for a finished execution changes nothing
    _HANDLERS[type(message)](step, message)
    if step.rejection is None:
        step.run()
    return step.decision()


def _rejected_start(step: NodeStep, message: StartExecution) -> None:
    step.rejection = Rejection(f"execution {message.execution_id} already exists")


_HANDLERS: dict[type[Any], Callable[[NodeStep, Any], None]] = {
    TaskResult: NodeStep.on_result,
    TaskHeartbeat: NodeStep.on_heartbeat,
    TimerFired: lambda step, message: step.on_timer(message.timer),
    ChildFinished: NodeStep.on_child_finished,
    SignalCommand: NodeStep.on_signal,
    PauseCommand: lambda step, _: step.on_pause(),
    ResumeCommand: lambda step, _: step.on_resume(),
    CancelCommand: NodeStep.on_cancel,
    ActivateExecution: lambda step, _: step.on_activate(),
    AttemptLost: NodeStep.on_lost,
    StartExecution: _rejected_start,
}
"""Which step method handles each inbox message type."""
