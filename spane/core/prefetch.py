"""Which node states a batch of events will likely read: what the orchestrator asks a
store to load instead of every node (``StateStore.load_many``'s ``nodes``). Pure.

A guess, never a requirement: a decision that reads a node outside it raises
:class:`~spane.schemas.view.MissingNodesError`, and the batch is decided again on a
full load. For a task's result (or heartbeat) and a child's end, the guess is the node,
its successors and every node their expressions read; a join that fires, a skip that
propagates or a failure that cancels the running nodes reads more, and pays one more
round trip. Workflows of at most :data:`SMALL_PLAN` nodes are loaded whole: reading
all their nodes costs about what reading a few does, and a guess that missed would
cost a round trip.
"""

from __future__ import annotations

from collections.abc import Iterable

from spane.compiler.plan import Plan
from spane.schemas.messages import ChildFinished, ExecutionMessage, TaskHeartbeat, TaskResult

SMALL_PLAN = 64
"""Plans with at most this many nodes are loaded whole."""


def nodes_read(plan: Plan, messages: Iterable[ExecutionMessage]) -> frozenset[str] | None:
    """The node states deciding ``messages`` will likely read, or None: load them all
    (a small plan, or a message that may read any node: a start, a command, a timer)."""
    if len(plan.nodes) <= SMALL_PLAN:
        return None
    wanted: set[str] = set()
    for message in messages:
        if not isinstance(message, TaskResult | TaskHeartbeat | ChildFinished):
            return None
        node = plan.nodes.get(message.node_id)
        if node is None:
            return None
        wanted.add(node.id)
        wanted |= node.node_refs
        for edge in node.children:
            child = plan.nodes[edge.target]
            wanted.add(child.id)
            wanted |= child.node_refs
    return frozenset(wanted)
