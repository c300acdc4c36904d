"""Structural helpers over a workflow's nodes, shared by validation and compilation. Pure.

How an ``after`` entry names an upstream port (:func:`split_ref`), which ports a node
can fire (:func:`node_ports`), which nodes run on workers (:func:`is_task`), which fields
are ``${ }``-templated (:func:`templated_fields`) and a deterministic topological order
(:func:`topological_order`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from spane.compiler.plan import PORT_ALWAYS, PORT_DEFAULT, PORT_ERROR, PORT_SUCCESS
from spane.schemas.workflow import (
    CONTROL_TYPES,
    TASK_TYPES_BUILTIN,
    CustomNode,
    DelayNode,
    FailNode,
    ForEachNode,
    HttpNode,
    NodeSpec,
    RepeatNode,
    SetNode,
    SwitchNode,
    TransformNode,
)

__all__ = [
    "BASE_PORTS",
    "is_task",
    "node_ports",
    "split_ref",
    "templated_fields",
    "topological_order",
]

BASE_PORTS = (PORT_SUCCESS, PORT_ERROR, PORT_ALWAYS)
"""Ports every node has."""


def split_ref(entry: str) -> tuple[str, str]:
    """``'charge'`` -> ``('charge', 'success')``; ``'charge.error'`` -> ``('charge', 'error')``."""
    node_id, dot, port = entry.partition(".")
    return node_id, port if dot else PORT_SUCCESS


def node_ports(node: NodeSpec) -> tuple[str, ...]:
    """The ports ``node`` can fire, in display order."""
    if isinstance(node, SwitchNode):
        return (*BASE_PORTS, PORT_DEFAULT, *(case.name for case in node.cases))
    return BASE_PORTS


def is_task(node: NodeSpec) -> bool:
    """Function, http and custom nodes run on worker pools; the rest are control nodes."""
    return node.type in TASK_TYPES_BUILTIN or node.type not in CONTROL_TYPES


def templated_fields(node: NodeSpec) -> list[tuple[str, Any]]:
    """The node's ``${ }``-templated fields other than ``input``, by name."""
    fields: list[tuple[str, Any]] = []
    if isinstance(node, HttpNode):
        fields.append(("request", node.request.model_dump(by_alias=True, exclude_none=True)))
        fields.append(("expect", node.expect.model_dump(by_alias=True, exclude_none=True)))
    elif isinstance(node, CustomNode):
        fields.append(("config", node.config))
    elif isinstance(node, TransformNode):
        fields.append(("output", node.output))
    elif isinstance(node, SetNode):
        fields.append(("vars", node.vars))
    elif isinstance(node, FailNode):
        fields.append(("error", node.error))
    elif isinstance(node, ForEachNode):
        fields.append(("items", node.items))
    elif isinstance(node, DelayNode) and node.until is not None:
        fields.append(("until", node.until))
    elif isinstance(node, RepeatNode) and isinstance(node.times, str):
        fields.append(("times", node.times))
    return fields


def topological_order(count: int, edges: Iterable[tuple[int, int]]) -> tuple[list[int], set[int]]:
    """Kahn's algorithm over node indices, ready nodes taken in index order.

    Returns the order and the indices that could not be ordered (on or behind a cycle).
    """
    successors: list[set[int]] = [set() for _ in range(count)]
    indegree = [0] * count
    for source, target in edges:
        if target not in successors[source]:
            successors[source].add(target)
            indegree[target] += 1
    ready = [index for index in range(count) if indegree[index] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for target in successors[index]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, target)
    return order, set(range(count)) - set(order)
