"""Join resolution (DESIGN §2, "Joins and skip propagation"). Pure."""

from __future__ import annotations

from enum import Enum

from spane.compiler.plan import Edge, JoinMode, PlanNode
from spane.schemas.state import TERMINAL_NODE_STATUSES, NodeState
from spane.schemas.view import ExecutionView


class Verdict(Enum):
    WAIT = "wait"  # not decided yet
    FIRE = "fire"  # the node runs
    SKIP = "skip"  # the node is skipped


def join_verdict(node: PlanNode, settled: int, fired: int) -> Verdict:
    """Decide a node's join from how many of its incoming edges settled and fired.

    - ``all``: once every edge settled, fire if at least one fired, else skip.
    - ``any`` / ``at_least N``: fire as soon as N fired; skip once N became impossible.
    """
    total = len(node.parents)
    if node.join is JoinMode.ALL:
        if settled < total:
            return Verdict.WAIT
        return Verdict.FIRE if fired else Verdict.SKIP
    if fired >= node.threshold:
        return Verdict.FIRE
    if fired + (total - settled) < node.threshold:
        return Verdict.SKIP
    return Verdict.WAIT


def settle_edge(node: PlanNode, state: NodeState, edge: Edge, fired: bool) -> dict[str, object]:
    """The changes to a PENDING node's state when one of its incoming edges settles:
    O(1), whatever the number of its parents."""
    settled, count = counts(state)
    changes: dict[str, object] = {"joined": settled + 1, "joined_fired": count + fired}
    if fired and node.join is not JoinMode.ALL:
        changes["edges"] = {**state.edges, edge.key: True}  # at most its threshold
    return changes


def counts(state: NodeState) -> tuple[int, int]:
    """Settled and fired incoming edges (a state written before the counters existed
    holds every settled edge in ``edges``)."""
    if state.joined or not state.edges:
        return state.joined, state.joined_fired
    return len(state.edges), sum(1 for value in state.edges.values() if value)


def edge_fired(node: PlanNode, view: ExecutionView, edge: Edge) -> bool:
    """Whether an incoming edge of a node fired (of a PENDING node: fired so far; of a
    node whose join resolved: when it resolved)."""
    if node.join is JoinMode.ALL:
        source = view.node(edge.source)
        return source.status in TERMINAL_NODE_STATUSES and edge.port in source.fired
    return bool(view.node(node.id).edges.get(edge.key))
