"""What a node receives and what its expressions see (DESIGN §2, "Data passing"). Pure."""

from __future__ import annotations

from typing import Any

from spane.compiler.plan import PORT_ALWAYS, PORT_ERROR, Plan, PlanNode
from spane.core.joins import edge_fired
from spane.schemas.state import NodeState, NodeStatus
from spane.schemas.view import ExecutionView


def _edge_value(port: str, state: NodeState) -> Any:
    if port == PORT_ERROR:
        return state.error.model_dump() if state.error else None
    if port == PORT_ALWAYS and state.status != NodeStatus.SUCCEEDED:
        return state.error.model_dump() if state.error else None
    return state.output


def gather_data(node: PlanNode, view: ExecutionView) -> Any:
    """The node's data: the execution input for roots, else its fired upstreams' values."""
    if not node.parents:
        return view.input
    values: dict[str, Any] = {}
    for edge in node.parents:
        if edge.source not in values and edge_fired(node, view, edge):
            values[edge.source] = _edge_value(edge.port, view.node(edge.source))
    if node.aggregate == "list":
        return list(values.values())
    if len(values) == 1:
        return next(iter(values.values()))
    if node.aggregate == "first":
        return next(iter(values.values()), None)
    if node.aggregate == "merge":
        merged: dict[str, Any] = {}
        for value in values.values():
            if isinstance(value, dict):
                merged.update(value)
        return merged
    return values


def node_summary(state: NodeState) -> dict[str, Any]:
    return {
        "output": state.output,
        "status": str(state.status),
        "error": state.error.model_dump() if state.error else None,
        "attempt": state.attempt,
    }


def build_context(
    plan: Plan, refs: frozenset[str], view: ExecutionView, data: Any
) -> dict[str, Any]:
    """The expression context; ``nodes`` holds only the nodes the expressions read."""
    meta = view.meta
    context: dict[str, Any] = {
        "input": view.input,
        "data": data,
        "vars": meta.vars,
        "nodes": {ref: node_summary(view.node(ref)) for ref in refs if ref in plan.nodes},
        "execution": {
            "id": meta.id,
            "workflow_id": meta.workflow_id,
            "version": meta.version,
            "started_at": meta.created_at,
            "depth": meta.depth,
        },
    }
    context.update(meta.context)
    return context


def default_output(plan: Plan, view: ExecutionView) -> Any:
    """The single succeeded leaf's output, or ``{leaf_id: output}`` over succeeded leaves."""
    outputs = {
        leaf: view.node(leaf).output
        for leaf in plan.leaves
        if view.node(leaf).status == NodeStatus.SUCCEEDED
    }
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    return outputs or None
