"""What the validation checks share: the graph being checked and where names resolve. Pure.

A :class:`Scope` says what expressions of one graph (the workflow or a loop body) may
refer to; a :class:`Site` says where one expression is evaluated, which decides the names
it may use; a :class:`Graph` is one graph as indices, with the edges found valid so far
and the problems found so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from spane.errors import Problem
from spane.schemas.workflow import NodeSpec

__all__ = ["LOOP_ROOTS", "Graph", "Scope", "Site"]

LOOP_ROOTS = frozenset({"item", "index", "iteration"})
"""Names only a loop body's expressions see."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What expressions of one graph (the workflow or a loop body) may refer to."""

    prefix: str
    """Location prefix: ``''`` or ``'nodes[4].body.'``."""
    node_ids: frozenset[str]
    variables: frozenset[str]
    in_body: bool


@dataclass(frozen=True, slots=True)
class Site:
    """Where an expression is evaluated, which decides the names it may use."""

    what: str
    """For messages: ``a guard``, ``a trigger's filter``, ``the workflow output``..."""
    loop_roots: frozenset[str] = frozenset()
    trigger: bool = False
    secrets: bool = False
    condition: bool = False


@dataclass(slots=True)
class Graph:
    """A graph (the workflow or a body) as indices; only valid edges are kept."""

    nodes: Sequence[NodeSpec]
    scope: Scope
    first: dict[str, int] = field(default_factory=dict)
    edges: list[tuple[int, str, int, int]] = field(default_factory=list)
    """(source, port, target, position in the target's ``after``)."""
    problems: list[Problem] = field(default_factory=list)

    def loc(self, index: int) -> str:
        """The location of node ``index``: ``nodes[2]``, ``nodes[4].body.nodes[0]``."""
        return f"{self.scope.prefix}nodes[{index}]"
