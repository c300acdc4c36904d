"""Worker pools: which pool a task node runs on, and what a worker serves. Pure.

A task node's attempts go to one pool, a durable queue ``<namespace>.tasks.<pool>``:
the node's ``pool:``, else (``function`` nodes only) the workflow's ``defaults.pool``,
else the pool named like its type (``function``, ``http``, ``image-resize``) — which
is where every task went before pools could be named.

A worker serves a :class:`PoolSpec`: a task type on a pool, written ``TYPE`` (the pool
named like the type) or ``TYPE:POOL`` (``function:scoring``: ``function`` tasks from
the ``scoring`` queue), as ``spane worker --pool`` and ``Engine(pools=...)`` take it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from spane.schemas.workflow import (
    LOOP_TYPES,
    CustomNode,
    Defaults,
    FunctionNode,
    HttpNode,
    NodeSpec,
    WorkflowSpec,
    pool_name_problem,
)

__all__ = [
    "PoolSpec",
    "node_pool",
    "parse_pool_spec",
    "pool_name_problem",
    "task_nodes",
    "workflow_pools",
]


@dataclass(frozen=True, slots=True, order=True)
class PoolSpec:
    """What one worker serves: tasks of ``task_type`` from the queue of ``pool``."""

    task_type: str
    pool: str

    def __str__(self) -> str:
        return self.task_type if self.task_type == self.pool else f"{self.task_type}:{self.pool}"


def parse_pool_spec(text: str) -> PoolSpec:
    """``TYPE`` or ``TYPE:POOL`` -> :class:`PoolSpec`; :class:`ValueError` saying why not."""
    task_type, sep, pool = text.strip().partition(":")
    if sep and not pool:
        raise ValueError(f"{text!r}: give a pool after ':' (TYPE:POOL), or only TYPE")
    for name in (task_type, pool) if sep else (task_type,):
        problem = pool_name_problem(name)
        if problem is not None:
            raise ValueError(f"{text!r}: {problem}")
    return PoolSpec(task_type, pool if sep else task_type)


def node_pool(node: NodeSpec, defaults: Defaults) -> str | None:
    """The pool a task node's attempts go to; None for a control node."""
    if not isinstance(node, FunctionNode | HttpNode | CustomNode):
        return None
    if node.pool is not None:
        return node.pool
    if isinstance(node, FunctionNode) and defaults.pool is not None:
        return defaults.pool
    return node.type


def task_nodes(
    nodes: Sequence[NodeSpec], prefix: str = ""
) -> Iterator[tuple[str, FunctionNode | HttpNode | CustomNode]]:
    """Every task node with its location (``nodes[2]``, ``nodes[4].body.nodes[0]``),
    loop bodies included."""
    for index, node in enumerate(nodes):
        loc = f"{prefix}nodes[{index}]"
        if isinstance(node, FunctionNode | HttpNode | CustomNode):
            yield loc, node
        body = getattr(node, "body", None)
        if node.type in LOOP_TYPES and body is not None:
            yield from task_nodes(body.nodes, f"{loc}.body.")


def workflow_pools(spec: WorkflowSpec) -> set[PoolSpec]:
    """Every (task type, pool) the workflow's task nodes are routed to."""
    pools: set[PoolSpec] = set()
    for _loc, node in task_nodes(spec.nodes):
        pool = node_pool(node, spec.defaults)
        assert pool is not None
        pools.add(PoolSpec(node.type, pool))
    return pools
