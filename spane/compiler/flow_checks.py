"""Validation of how control flows through a graph (DESIGN §2, "Validation"). Pure.

Cycles (naming the nodes, located at the edge that closes them) and nodes that can never
run (every way in is dead: a fail node's success port, or too few edges that can fire
for the join).
"""

from __future__ import annotations

from spane.compiler.plan import PORT_ALWAYS, PORT_SUCCESS
from spane.compiler.scope import Graph
from spane.errors import Problem
from spane.schemas.workflow import AtLeast, FailNode

__all__ = ["cycle_problems", "reachability_problems"]


def _find_cycle(start: int, members: set[int], successors: list[list[int]]) -> list[int]:
    """Shortest cycle through ``start`` inside ``members`` (breadth-first)."""
    parent: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for current in frontier:
            for target in successors[current]:
                if target == start:
                    path = [current]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if target in members and target not in parent:
                    parent[target] = current
                    following.append(target)
        frontier = following
    return [start]


def _reaches(start: int, successors: list[list[int]]) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for target in successors[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def cycle_problems(graph: Graph, blocked: set[int]) -> None:
    """Report each cycle among the ``blocked`` nodes once, by its shortest loop."""
    successors: list[list[int]] = [[] for _ in graph.nodes]
    for source, _port, target, _position in graph.edges:
        successors[source].append(target)
    reach = {index: _reaches(index, successors) for index in blocked}
    reported: set[int] = set()
    for index in sorted(blocked):
        members = {other for other in blocked if index in reach[other] and other in reach[index]}
        if index in reported or len(members) < 2:
            continue
        reported |= members
        cycle = _find_cycle(index, members, successors)
        names = " -> ".join(graph.nodes[member].id for member in cycle)
        previous = cycle[-2]
        position = next(
            pos for src, _p, tgt, pos in graph.edges if src == previous and tgt == index
        )
        graph.problems.append(
            Problem(
                f"{graph.loc(index)}.after[{position}]",
                f"cycle: {names}",
                "repeat work with a while/repeat/for_each loop node instead",
            )
        )


def _edge_can_fire(graph: Graph, live: list[bool], source: int, port: str) -> bool:
    if port == PORT_ALWAYS:
        return True  # fires even when the source is skipped
    if not live[source]:
        return False
    return not (isinstance(graph.nodes[source], FailNode) and port == PORT_SUCCESS)


def _dead_reason(graph: Graph, incoming: list[tuple[int, str]], fired: int) -> Problem:
    fails = [
        graph.nodes[source].id
        for source, port in incoming
        if isinstance(graph.nodes[source], FailNode) and port == PORT_SUCCESS
    ]
    if fired:
        return Problem("", f"can never run: only {fired} of its upstream edges can fire")
    if fails:
        return Problem(
            "",
            f"can never run: {fails[0]!r} is a fail node, its success port never fires",
            f"use '{fails[0]}.error' or '{fails[0]}.always'",
        )
    sources = ", ".join(repr(graph.nodes[source].id) for source, _port in incoming)
    return Problem("", f"can never run: every upstream node ({sources}) can never run")


def reachability_problems(graph: Graph, order: list[int]) -> None:
    """Report the nodes that can never run, visiting them in topological ``order``."""
    incoming: list[list[tuple[int, str]]] = [[] for _ in graph.nodes]
    for source, port, target, _position in graph.edges:
        incoming[target].append((source, port))
    live = [True] * len(graph.nodes)
    for index in order:
        edges = incoming[index]
        node = graph.nodes[index]
        if not edges or len(edges) != len(node.after):
            continue  # a root, or an invalid reference reported already
        needed = node.join.at_least if isinstance(node.join, AtLeast) else 1
        fired = sum(_edge_can_fire(graph, live, source, port) for source, port in edges)
        if fired >= needed or (needed > len(node.after)):
            continue  # a bad threshold is reported by the join check
        live[index] = False
        reason = _dead_reason(graph, edges, fired)
        graph.problems.append(
            Problem(f"{graph.loc(index)}.after", f"node {node.id!r} {reason.message}", reason.hint)
        )
