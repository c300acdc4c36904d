"""Validation of the worker pools a workflow's task nodes name. Pure.

A worker serves one task type on a pool (:mod:`spane.schemas.pools`), so within one
workflow (loop bodies included) a pool carries one task type, and a pool named like a
built-in task type (``function``, ``http``) carries only that type. Pool names
themselves are checked by the schema (``nodes[i].pool``, ``defaults.pool``).
"""

from __future__ import annotations

from spane.errors import Problem
from spane.schemas.pools import node_pool, task_nodes
from spane.schemas.workflow import TASK_TYPES_BUILTIN, FunctionNode, WorkflowSpec

__all__ = ["pool_problems"]


def _where(loc: str, node: object) -> str:
    """The field that put the node on its pool: its own ``pool``, else ``defaults.pool``."""
    if getattr(node, "pool", None) is None and isinstance(node, FunctionNode):
        return "defaults.pool"
    return f"{loc}.pool"


def pool_problems(spec: WorkflowSpec) -> list[Problem]:
    """A pool used for two task types, or a built-in type's pool used for another."""
    problems: list[Problem] = []
    seen: dict[str, tuple[str, str]] = {}  # pool -> (task type, where first)
    for loc, node in task_nodes(spec.nodes):
        pool = node_pool(node, spec.defaults) or node.type
        first = seen.setdefault(pool, (node.type, loc))
        where = _where(loc, node)
        if pool in TASK_TYPES_BUILTIN and pool != node.type:
            problems.append(
                Problem(
                    where,
                    f"pool {pool!r} runs {pool!r} tasks; a {node.type!r} node cannot run there",
                    "name another pool, or leave 'pool' out",
                )
            )
        elif first[0] != node.type:
            problems.append(
                Problem(
                    where,
                    f"pool {pool!r} gets {node.type!r} tasks here but {first[0]!r} tasks "
                    f"from {first[1]}; a worker serves one task type per pool",
                    "give each task type its own pool",
                )
            )
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    """``defaults.pool`` is reported once, however many nodes inherit it."""
    seen: set[tuple[str, str]] = set()
    kept: list[Problem] = []
    for problem in problems:
        key = (problem.location, problem.message)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept
