"""Validation of node ids and ``after`` references (DESIGN §2, "Validation"). Pure.

Duplicate ids, a node after itself, unknown upstream nodes and ports (with a hint), and
the same upstream port listed twice. The references found valid become the edges of the
:class:`~spane.compiler.scope.Graph`, which the flow checks then use.
"""

from __future__ import annotations

import difflib

from spane.compiler.graph import node_ports, split_ref
from spane.compiler.hints import did_you_mean
from spane.compiler.scope import Graph
from spane.errors import Problem

__all__ = ["check_after", "index_ids"]


def index_ids(graph: Graph) -> None:
    """Record where each node id first appears; report the duplicates."""
    for index, node in enumerate(graph.nodes):
        if node.id in graph.first:
            first = graph.loc(graph.first[node.id])
            message = f"duplicate node id {node.id!r}"
            graph.problems.append(Problem(f"{graph.loc(index)}.id", message, f"first at {first}"))
        else:
            graph.first[node.id] = index


def _after_problem(graph: Graph, index: int, entry: str) -> Problem | None:
    node = graph.nodes[index]
    source_id, port = split_ref(entry)
    if source_id == node.id:
        return Problem("", f"node {node.id!r} cannot run after itself")
    if source_id not in graph.first:
        hint = did_you_mean(source_id, graph.first)
        return Problem("", f"unknown node {source_id!r}", hint)
    ports = node_ports(graph.nodes[graph.first[source_id]])
    if port not in ports:
        close = difflib.get_close_matches(port, ports, n=1)
        listing = f"ports of {source_id!r}: {', '.join(ports)}"
        hint = f"did you mean '{source_id}.{close[0]}'? {listing}" if close else listing
        return Problem("", f"unknown port {port!r} of node {source_id!r}", hint)
    return None


def check_after(graph: Graph, index: int) -> None:
    """Check node ``index``'s ``after`` entries; keep the valid ones as edges."""
    node = graph.nodes[index]
    seen: dict[tuple[str, str], int] = {}
    for position, entry in enumerate(node.after):
        loc = f"{graph.loc(index)}.after[{position}]"
        problem = _after_problem(graph, index, entry)
        if problem is not None:
            graph.problems.append(Problem(loc, problem.message, problem.hint))
            continue
        key = split_ref(entry)
        if key in seen:
            graph.problems.append(
                Problem(
                    loc,
                    f"upstream port '{key[0]}.{key[1]}' is listed twice",
                    f"also at after[{seen[key]}]",
                )
            )
            continue
        seen[key] = position
        graph.edges.append((graph.first[key[0]], key[1], index, position))
