"""Join resolution (DESIGN §2, "Joins and skip propagation"). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

from spane.compiler.plan import JoinMode, PlanNode


class Verdict(Enum):
    WAIT = "wait"  # not decided yet
    FIRE = "fire"  # the node runs
    SKIP = "skip"  # the node is skipped


def join_verdict(node: PlanNode, edges: Mapping[str, bool]) -> Verdict:
    """Decide a node's join from its settled incoming edges (``edge key -> fired``).

    - ``all``: once every edge settled, fire if at least one fired, else skip.
    - ``any`` / ``at_least N``: fire as soon as N fired; skip once N became impossible.
    """
    total = len(node.parents)
    settled = len(edges)
    fired = sum(1 for value in edges.values() if value)
    if node.join is JoinMode.ALL:
        if settled < total:
            return Verdict.WAIT
        return Verdict.FIRE if fired else Verdict.SKIP
    if fired >= node.threshold:
        return Verdict.FIRE
    if fired + (total - settled) < node.threshold:
        return Verdict.SKIP
    return Verdict.WAIT
