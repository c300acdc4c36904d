"""Human-readable views of a compiled :class:`~spane.compiler.plan.Plan`. Pure.

:func:`describe_plan` puts the plan in words (what ``spane validate`` / ``spane
describe`` print); :func:`to_mermaid` draws it as a Mermaid ``flowchart TD``.
"""

from __future__ import annotations

from collections.abc import Iterable

from spane.compiler.plan import (
    PORT_ALWAYS,
    PORT_ERROR,
    PORT_SUCCESS,
    Edge,
    JoinMode,
    Plan,
    PlanNode,
)
from spane.schemas.durations import format_duration

__all__ = ["describe_plan", "to_mermaid"]

_DASHED_PORTS = frozenset({PORT_ERROR, PORT_ALWAYS})


def _names(ids: Iterable[str]) -> str:
    return ", ".join(ids) or "none"


def _edge_name(edge: Edge) -> str:
    return edge.source if edge.port == PORT_SUCCESS else edge.key


def _join_text(node: PlanNode) -> str:
    edges = len(node.parents)
    if node.join is JoinMode.ANY:
        return "join any: runs on the first fired edge"
    if node.join is JoinMode.AT_LEAST:
        return f"join at least {node.threshold} of {edges}"
    return "join all: waits for every edge, runs if one fired"


def _node_line(node: PlanNode) -> str:
    parts = [f"{node.id} [{node.type}, {node.kind}]"]
    if node.parents:
        parts.append("after " + ", ".join(_edge_name(edge) for edge in node.parents))
        if len(node.parents) > 1:
            parts.append(_join_text(node))
    else:
        parts.append("root")
    if node.guard is not None:
        parts.append(f"when {node.guard.source}")
    if node.cases:
        parts.append("cases " + ", ".join(case.name for case in node.cases) + ", default")
    if node.timeout is not None:
        parts.append(f"timeout {format_duration(node.timeout)}")
    if node.retry.max_attempts > 1:
        parts.append(f"up to {node.retry.max_attempts} attempts")
    if node.body is not None:
        parts.append(f"body {node.body.workflow_id!r} ({len(node.body.nodes)} nodes)")
    return "; ".join(parts)


def describe_plan(plan: Plan) -> str:
    """The plan in words: roots, each node (type, upstream edges, join, guard), branch
    and convergence points, parallel groups, leaves and the path count."""
    lines = [
        f"Workflow {plan.workflow_id!r} version {plan.version} "
        f"({len(plan.nodes)} nodes, checksum {plan.checksum[:12]})",
        f"Roots: {_names(plan.roots)}",
        "Nodes (topological order):",
    ]
    lines += [f"  - {_node_line(plan.nodes[node_id])}" for node_id in plan.order]
    lines += [
        f"Branch points: {_names(plan.branch_points)}",
        f"Convergence points: {_names(plan.convergence_points)}",
        "Parallel groups:",
    ]
    lines += [f"  {level}: {_names(group)}" for level, group in enumerate(plan.groups)]
    lines.append(f"Leaves: {_names(plan.leaves)}")
    capped = f" (capped at {len(plan.paths)}, there are more)" if plan.paths_capped else ""
    lines.append(f"Paths: {len(plan.paths)}{capped}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(plan: Plan) -> str:
    """A Mermaid ``flowchart TD``: one box per node (id and type), edges labelled with
    their port unless it is ``success``; ``error`` and ``always`` edges are dashed."""
    ids = {node_id: f"n{index}" for index, node_id in enumerate(plan.nodes)}
    lines = ["flowchart TD"]
    for node_id, node in plan.nodes.items():
        label = _mermaid_text(f"{node_id}<br/>{node.type}")
        lines.append(f'    {ids[node_id]}["{label}"]')
    for node in plan.nodes.values():
        for edge in node.parents:
            arrow = "-.->" if edge.port in _DASHED_PORTS else "-->"
            label = "" if edge.port == PORT_SUCCESS else f"|{_mermaid_text(edge.port)}|"
            lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    return "\n".join(lines)
