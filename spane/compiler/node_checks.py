"""Validation of one node's own fields that need more than their type. Pure.

Join thresholds (``at_least`` no larger than the number of upstream edges), switch case
names (not a port name, not twice), ``break``/``continue`` placement (only in a loop
body) and custom types that are near misses of built-in ones (``type: swtich``).
"""

from __future__ import annotations

from spane.compiler.hints import count
from spane.compiler.plan import PORT_ALWAYS, PORT_DEFAULT, PORT_ERROR, PORT_SUCCESS
from spane.errors import Problem
from spane.schemas.suggestions import node_type_problem
from spane.schemas.workflow import AtLeast, CustomNode, NodeSpec, SwitchNode

__all__ = ["RESERVED_CASE_NAMES", "node_field_problems"]

RESERVED_CASE_NAMES = frozenset({PORT_SUCCESS, PORT_ERROR, PORT_ALWAYS, PORT_DEFAULT})
_BODY_ONLY_TYPES = frozenset({"break", "continue"})


def _switch_problems(node: SwitchNode, loc: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for position, case in enumerate(node.cases):
        where = f"{loc}.cases[{position}].name"
        if case.name in RESERVED_CASE_NAMES:
            problems.append(
                Problem(
                    where,
                    f"case name {case.name!r} is reserved for a port",
                    "reserved: " + ", ".join(sorted(RESERVED_CASE_NAMES)),
                )
            )
        elif case.name in seen:
            problems.append(Problem(where, f"duplicate case name {case.name!r}"))
        seen.add(case.name)
    return problems


def _join_problem(node: NodeSpec, loc: str) -> Problem | None:
    if isinstance(node.join, AtLeast) and node.join.at_least > len(node.after):
        edges, needed = len(node.after), node.join.at_least
        return Problem(
            f"{loc}.join",
            f"join needs at_least {count(needed, 'fired edge')} "
            f"but the node has only {count(edges, 'upstream edge')}",
            f"use a number between 1 and {edges}" if edges else "remove the join",
        )
    return None


def node_field_problems(node: NodeSpec, loc: str, in_body: bool) -> list[Problem]:
    """Problems of ``node``'s join, switch cases and placement (``in_body``: in a loop)."""
    problems: list[Problem] = []
    join = _join_problem(node, loc)
    if join is not None:
        problems.append(join)
    if isinstance(node, SwitchNode):
        problems.extend(_switch_problems(node, loc))
    if isinstance(node, CustomNode):
        typo = node_type_problem(node.type, node.pool, loc)
        problems.extend([typo] if typo is not None else [])
    if node.type in _BODY_ONLY_TYPES and not in_body:
        problems.append(Problem(f"{loc}.type", f"{node.type!r} is only valid inside a loop body"))
    return problems
