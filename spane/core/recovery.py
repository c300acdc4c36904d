"""Retry and replay: running an execution again from where it failed, or a new one from
a chosen node with the outputs of the rest reused. Pure.

Both rest on one idea: some nodes are *kept* (their settled state stands: a success, a
handled failure, a skip whose inputs are kept too), every other node starts again as
PENDING, and each of those whose join already resolves from the kept nodes goes on the
work list (roots too), exactly as if its last parent had just settled.

- **retry** (:func:`on_retry`, a :class:`~spane.schemas.messages.RetryCommand`): the
  same execution goes back to RUNNING. Attempt numbers go on (task, timer and child ids
  never repeat, so a late result of an attempt from before the retry is stale); the
  retry budget of each node starts afresh (``NodeState.attempt_base``).
- **replay** (:func:`replay_seed`, then ``begin`` with ``StartExecution.seed``): a new
  execution whose kept nodes are seeded from an old one: every node but ``from_node``
  and what is downstream of it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from spane.compiler.plan import Plan
from spane.core.graph import activate_later
from spane.core.joins import Verdict, join_verdict, settle_edge
from spane.core.working import Working, emit_execution, schedule
from spane.errors import InvalidInputError
from spane.schemas.messages import RetryCommand
from spane.schemas.state import (
    TERMINAL_NODE_STATUSES,
    ExecutionMeta,
    ExecutionStatus,
    NodeState,
    NodeStatus,
    TimerKind,
)
from spane.schemas.view import ExecutionView

RETRYABLE = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.CANCELLED}
)
"""Execution statuses a retry accepts."""


# ------------------------------------------------------------------ kept nodes
def kept_nodes(
    plan: Plan, nodes: Mapping[str, NodeState], rerun: Collection[str] = ()
) -> dict[str, NodeState]:
    """The nodes whose settled state stands, in topological order: succeeded ones, failed
    ones whose failure an ``.error`` edge handled, and skipped ones whose parents are all
    kept (a skip decided by a node that runs again is decided again). ``rerun`` nodes are
    never kept."""
    kept: dict[str, NodeState] = {}
    for node_id in plan.order:
        state = nodes.get(node_id)
        if state is None or node_id in rerun:
            continue
        node = plan.node(node_id)
        match state.status:
            case NodeStatus.SUCCEEDED:
                kept[node_id] = state
            case NodeStatus.FAILED if node.handles_error:
                kept[node_id] = state
            case NodeStatus.SKIPPED if all(edge.source in kept for edge in node.parents):
                kept[node_id] = state
            case _:
                pass
    return kept


def downstream(plan: Plan, node_id: str) -> set[str]:
    """``node_id`` and every node reachable from it by any port."""
    found = {node_id}
    stack = [node_id]
    while stack:
        for edge in plan.node(stack.pop()).children:
            if edge.target not in found:
                found.add(edge.target)
                stack.append(edge.target)
    return found


def reactivate(w: Working) -> None:
    """Queue every unsettled node whose join resolves from the settled ones (and every
    unsettled root); the others wait for their parents as usual."""
    view = w.view
    for node_id in w.plan.order:
        if view.node(node_id).status in TERMINAL_NODE_STATUSES:
            continue
        node = w.plan.node(node_id)
        if not node.parents:
            activate_later(w, node_id)
            continue
        state = view.update_node(node_id, edges={}, joined=0, joined_fired=0)
        for edge in node.parents:
            parent = view.node(edge.source)
            if parent.status in TERMINAL_NODE_STATUSES:
                fired = edge.port in parent.fired
                state = view.update_node(node_id, **settle_edge(node, state, edge, fired))
        verdict = join_verdict(node, state.joined, state.joined_fired)
        if verdict is not Verdict.WAIT:
            view.update_node(node_id, status=NodeStatus.READY)
            w.work.append((node_id, verdict is Verdict.FIRE))


# ----------------------------------------------------------------------- retry
def retry_refusal(meta: ExecutionMeta) -> str | None:
    """Why the execution cannot be retried, or None."""
    if meta.parent is not None or meta.body is not None:
        parent = meta.parent.execution_id if meta.parent else "its parent"
        return f"execution {meta.id} is a child execution: retry {parent} instead"
    if meta.status not in RETRYABLE:
        if meta.status == ExecutionStatus.SUCCEEDED:
            return f"execution {meta.id} succeeded: nothing to retry (replay it instead)"
        return (
            f"execution {meta.id} is {meta.status}: only a failed, timed-out or "
            "cancelled one can be retried"
        )
    return None


def on_retry(w: Working, message: RetryCommand) -> None:
    """Reset what did not succeed to PENDING, go back to RUNNING, and start again."""
    meta = w.view.meta
    problem = retry_refusal(meta)
    if problem is not None:
        w.refuse(problem)
        return
    nodes = {node_id: w.view.node(node_id) for node_id in w.plan.order}
    kept = kept_nodes(w.plan, nodes)
    rerun = [node_id for node_id in w.plan.order if node_id not in kept]
    if not rerun:
        w.refuse(f"execution {meta.id} has no node to run again")
        return
    for node_id in rerun:
        old = nodes[node_id]
        fresh = NodeState(attempt=old.attempt, attempt_base=old.attempt, children=old.children)
        w.view.update_node(node_id, **dict(fresh))
    retries = meta.retries + 1
    w.view.update_meta(
        status=ExecutionStatus.RUNNING,
        output=None,
        error=None,
        finished_at=None,
        deadline=None,
        failing=False,
        finally_nodes=(),
        unsettled=len(rerun),
        running=0,
        active=(),
        queue=(),
        deferred=(),
        held=(),
        signals={},
        loop_control=None,
        retries=retries,
    )
    emit_execution(w, "retried", seq=retries, retry=retries, nodes=rerun, previous=str(meta.status))
    if w.plan.timeout is not None:
        deadline = w.now + w.plan.timeout
        w.view.update_meta(deadline=deadline)
        schedule(w, TimerKind.EXECUTION_TIMEOUT, None, 0, deadline)
    reactivate(w)


# ---------------------------------------------------------------------- replay
def replay_seed(plan: Plan, nodes: Mapping[str, NodeState], from_node: str) -> dict[str, NodeState]:
    """The node states a replay of an execution from ``from_node`` takes over: the kept
    nodes outside ``from_node`` and its downstream, stripped to their outcome.

    Raises :class:`~spane.errors.InvalidInputError` (naming the valid node ids) when
    ``from_node`` is not a node of the plan."""
    if from_node not in plan.nodes:
        valid = ", ".join(plan.order)
        raise InvalidInputError(
            f"from_node: {from_node!r} is not a node of workflow {plan.workflow_id!r} "
            f"v{plan.version} (nodes: {valid})"
        )
    kept = kept_nodes(plan, nodes, downstream(plan, from_node))
    return {node_id: _outcome(state) for node_id, state in kept.items()}


def _outcome(state: NodeState) -> NodeState:
    return NodeState(
        status=state.status,
        attempt=state.attempt,
        output=state.output,
        error=state.error,
        fired=state.fired,
        started_at=state.started_at,
        finished_at=state.finished_at,
    )


def seed_view(plan: Plan, view: ExecutionView, seed: Mapping[str, NodeState]) -> None:
    """Take over a replay's seeded node states (settled ones of the plan's nodes only;
    a FAILED one only if an ``.error`` edge handles it)."""
    seeded = 0
    for node_id, state in seed.items():
        node = plan.nodes.get(node_id)
        if node is None or state.status not in TERMINAL_NODE_STATUSES:
            continue
        if state.status == NodeStatus.CANCELLED:
            continue
        if state.status == NodeStatus.FAILED and not node.handles_error:
            continue
        view.update_node(node_id, **dict(_outcome(state)))
        seeded += 1
    view.update_meta(unsettled=view.meta.unsettled - seeded)


__all__ = [
    "RETRYABLE",
    "downstream",
    "kept_nodes",
    "on_retry",
    "reactivate",
    "replay_seed",
    "retry_refusal",
    "seed_view",
]
