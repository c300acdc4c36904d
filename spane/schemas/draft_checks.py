"""Graph checks over a definition that failed its pydantic model. Pure.

When a node does not fit its model there is no :class:`~spane.schemas.workflow.WorkflowSpec`
for the compiler's graph checks, yet the graph problems are already there. So that
``spane validate`` lists every problem in one pass, :func:`draft_problems` runs the
reference checks over the raw node dicts that have a string ``id`` — duplicate ids, a
node after itself, unknown upstream nodes and ports (with hints), an upstream port
listed twice, cycles — and flags near misses of built-in node types (``type: swtich``),
recursing into inline loop bodies. Messages are worded like the compiler's.

It also returns the fields its type hints explain: a ``cases:`` on a ``type: swtich``
node is "unknown" only because of the type's typo, so the loader drops that noise.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spane.errors import Problem
from spane.schemas.suggestions import (
    did_you_mean,
    field_names,
    model_at,
    near_builtin_type,
    node_type_problem,
)
from spane.schemas.workflow import LOOP_TYPES

__all__ = ["DraftReport", "draft_problems"]

_BASE_PORTS = ("success", "error", "always")
_CYCLE_HINT = "repeat work with a while/repeat/for_each loop node instead"


@dataclass(slots=True)
class DraftReport:
    """What the draft checks found."""

    problems: list[Problem] = field(default_factory=list)
    explained: set[str] = field(default_factory=set)
    """Locations of fields that are unknown only because of a reported type typo."""


@dataclass(slots=True)
class _Draft:
    """One graph (the workflow or a loop body) as raw dicts."""

    nodes: list[dict[str, Any]]
    prefix: str
    report: DraftReport
    first: dict[str, int] = field(default_factory=dict)
    edges: list[tuple[int, int, int]] = field(default_factory=list)
    """(source, target, position in the target's ``after``)."""

    def loc(self, index: int) -> str:
        return f"{self.prefix}nodes[{index}]"

    def add(self, location: str, message: str, hint: str | None = None) -> None:
        self.report.problems.append(Problem(location, message, hint))


def draft_problems(data: Any) -> DraftReport:
    """The graph problems of a raw definition (a decoded YAML/JSON document)."""
    report = DraftReport()
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if isinstance(nodes, list):
        _check_graph(nodes, "", report)
    return report


def _check_graph(nodes: Sequence[Any], prefix: str, report: DraftReport) -> None:
    draft = _Draft([node if isinstance(node, dict) else {} for node in nodes], prefix, report)
    for index, node in enumerate(draft.nodes):
        node_id = node.get("id")
        if not isinstance(node_id, str):
            continue
        if node_id in draft.first:
            first = draft.loc(draft.first[node_id])
            draft.add(
                f"{draft.loc(index)}.id", f"duplicate node id {node_id!r}", f"first at {first}"
            )
        else:
            draft.first[node_id] = index
    for index, node in enumerate(draft.nodes):
        _check_type(draft, index)
        if isinstance(node.get("id"), str):
            _check_after(draft, index)
        _check_body(draft, index)
    _check_cycles(draft)


def _check_type(draft: _Draft, index: int) -> None:
    node = draft.nodes[index]
    problem = node_type_problem(node.get("type"), node.get("pool"), draft.loc(index))
    if problem is None:
        return
    draft.report.problems.append(problem)
    builtin = near_builtin_type(str(node["type"]))
    model = model_at(("nodes", 0, str(builtin)))  # the model that type selects
    allowed = set(field_names(model)) if model is not None else set()
    draft.report.explained.update(f"{draft.loc(index)}.{name}" for name in node if name in allowed)


def _check_body(draft: _Draft, index: int) -> None:
    node = draft.nodes[index]
    body = node.get("body")
    if node.get("type") in LOOP_TYPES and isinstance(body, dict):
        nodes = body.get("nodes")
        if isinstance(nodes, list):
            _check_graph(nodes, f"{draft.loc(index)}.body.", draft.report)


def _ports(node: dict[str, Any]) -> tuple[str, ...]:
    if node.get("type") != "switch" or not isinstance(node.get("cases"), list):
        return _BASE_PORTS
    names = [case.get("name") for case in node["cases"] if isinstance(case, dict)]
    return (*_BASE_PORTS, "default", *(name for name in names if isinstance(name, str)))


def _reference_problem(draft: _Draft, node_id: str, entry: str) -> Problem | None:
    source_id, dot, port = entry.partition(".")
    port = port if dot else "success"
    if source_id == node_id:
        return Problem("", f"node {node_id!r} cannot run after itself")
    if source_id not in draft.first:
        return Problem("", f"unknown node {source_id!r}", did_you_mean(source_id, draft.first))
    ports = _ports(draft.nodes[draft.first[source_id]])
    if port not in ports:
        close = difflib.get_close_matches(port, ports, n=1)
        listing = f"ports of {source_id!r}: {', '.join(ports)}"
        hint = f"did you mean '{source_id}.{close[0]}'? {listing}" if close else listing
        return Problem("", f"unknown port {port!r} of node {source_id!r}", hint)
    return None


def _check_after(draft: _Draft, index: int) -> None:
    node = draft.nodes[index]
    after = node.get("after", [])
    entries = [after] if isinstance(after, str) else after if isinstance(after, list) else []
    seen: dict[tuple[str, str], int] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, str):
            continue
        loc = f"{draft.loc(index)}.after[{position}]"
        problem = _reference_problem(draft, node["id"], entry)
        if problem is not None:
            draft.add(loc, problem.message, problem.hint)
            continue
        source_id, dot, port = entry.partition(".")
        key = (source_id, port if dot else "success")
        if key in seen:
            draft.add(
                loc,
                f"upstream port '{key[0]}.{key[1]}' is listed twice",
                f"also at after[{seen[key]}]",
            )
            continue
        seen[key] = position
        draft.edges.append((draft.first[source_id], index, position))


def _check_cycles(draft: _Draft) -> None:
    """Report one cycle per group of nodes that reach each other (shortest loop first)."""
    successors: dict[int, set[int]] = {}
    for source, target, _position in draft.edges:
        successors.setdefault(source, set()).add(target)
    reported: set[int] = set()
    for start in sorted(successors):
        if start in reported:
            continue
        cycle = _shortest_cycle(start, successors)
        if cycle is None:
            continue
        reported.update(_reaching(start, successors) & _reached_by(start, successors))
        previous = cycle[-2]
        position = min(pos for src, tgt, pos in draft.edges if src == previous and tgt == start)
        names = " -> ".join(str(draft.nodes[member]["id"]) for member in cycle)
        draft.add(f"{draft.loc(start)}.after[{position}]", f"cycle: {names}", _CYCLE_HINT)


def _shortest_cycle(start: int, successors: dict[int, set[int]]) -> list[int] | None:
    """``[start, ..., start]`` by breadth-first search, or None."""
    parent: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for current in frontier:
            for target in sorted(successors.get(current, ())):
                if target == start:
                    path = [current]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if target not in parent:
                    parent[target] = current
                    following.append(target)
        frontier = following
    return None


def _reaching(start: int, successors: dict[int, set[int]]) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for target in successors.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _reached_by(start: int, successors: dict[int, set[int]]) -> set[int]:
    predecessors: dict[int, set[int]] = {}
    for source, targets in successors.items():
        for target in targets:
            predecessors.setdefault(target, set()).add(source)
    return _reaching(start, predecessors)
