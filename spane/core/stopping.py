"""Stopping what an active node waits on: its task, its timers, its signal, its children.

Used when an execution fails, is cancelled or times out, when a loop iteration ends a
body early (break/continue), and when an attempt ends. Pure.
"""

from __future__ import annotations

from spane.compiler.plan import PlanNode
from spane.core.ids import child_execution_id, task_id
from spane.core.working import Working, cancel_timer
from spane.schemas.commands import CancelChild, CancelTask
from spane.schemas.state import LoopState, NodeStatus, TimerKind, WaitReason


def stop_node(w: Working, node_id: str) -> None:
    """Cancel whatever an active node is waiting on (task, timers, signal, children)."""
    state = w.view.node(node_id)
    node = w.plan.node(node_id)
    if state.status == NodeStatus.RUNNING:
        stop_task(w, node_id, state.attempt)
        end_attempt(w, node, state.attempt)
        return
    match state.wait:
        case WaitReason.RETRY:
            cancel_timer(w, TimerKind.RETRY, node_id, state.attempt)
        case WaitReason.DELAY:
            cancel_timer(w, TimerKind.DELAY, node_id, state.attempt)
        case WaitReason.SIGNAL:
            unregister_signal(w, node_id)
            if node.timeout is not None:
                cancel_timer(w, TimerKind.SIGNAL_TIMEOUT, node_id, state.attempt)
        case WaitReason.CHILD:
            stop_children(w, node_id)
            if node.timeout is not None:
                cancel_timer(w, TimerKind.CHILD_TIMEOUT, node_id, state.attempt)
        case _:
            pass


def stop_task(w: Working, node_id: str, attempt: int) -> None:
    meta = w.view.meta
    w.commands.append(CancelTask(task_id(meta.id, node_id, attempt), meta.id, node_id))


def end_attempt(w: Working, node: PlanNode, attempt: int) -> None:
    """A running attempt is over (result, timeout, loss, stop): free its slot, timers."""
    if node.timeout is not None:
        cancel_timer(w, TimerKind.ATTEMPT_TIMEOUT, node.id, attempt)
    cancel_timer(w, TimerKind.LIVENESS, node.id, attempt)
    w.view.update_meta(running=max(w.view.meta.running - 1, 0))
    w.view.set_active(node.id, False)


def unregister_signal(w: Working, node_id: str) -> None:
    signals = {
        name: tuple(n for n in nodes if n != node_id) for name, nodes in w.view.meta.signals.items()
    }
    w.view.update_meta(signals={name: nodes for name, nodes in signals.items() if nodes})


def stop_children(w: Working, node_id: str) -> None:
    """Cancel the children of a loop or sub-workflow node that is being stopped."""
    state = w.view.node(node_id)
    if state.loop is not None:
        stop_iterations(w, node_id, state.loop)
    elif state.children:
        w.commands.append(CancelChild(state.children[-1]))


def stop_iterations(w: Working, node_id: str, loop: LoopState) -> None:
    """Cancel the running iterations of a loop node."""
    execution_id = w.view.meta.id
    attempt = w.view.node(node_id).attempt
    for index in loop.running:
        w.commands.append(
            CancelChild(child_execution_id(execution_id, node_id, attempt, index + 1))
        )
