"""Node states read from Redis are decoded only when a transition looks at them."""

from __future__ import annotations

import pytest

from spane.schemas.state import ExecutionMeta, NodeState, NodeStatus
from spane.schemas.view import ExecutionView
from spane.state.redis import LazyNodes


def raw(**states: NodeState) -> dict[bytes | str, bytes | str]:
    return {node_id.encode(): state.model_dump_json().encode() for node_id, state in states.items()}


def test_decodes_on_first_access_and_keeps_the_result() -> None:
    a = NodeState(status=NodeStatus.SUCCEEDED, attempt=2, output={"x": 1})
    nodes = LazyNodes({**raw(a=a), b"broken": b"{not json"})

    assert len(nodes) == 2
    assert set(nodes) == {"a", "broken"}
    assert "a" in nodes
    assert "missing" not in nodes
    assert nodes["a"] == a
    assert nodes["a"] is nodes["a"]  # decoded once
    assert nodes.get("missing") is None
    with pytest.raises(KeyError):
        nodes["missing"]
    with pytest.raises(ValueError, match="Invalid JSON"):
        nodes["broken"]  # only the node looked at is decoded


def test_a_view_over_lazy_nodes_reads_like_one_over_a_dict() -> None:
    a = NodeState(status=NodeStatus.RUNNING, attempt=1)
    meta = ExecutionMeta(id="e", workflow_id="w", version=1, created_at=1.0)
    view = ExecutionView(meta, LazyNodes(raw(a=a)))

    assert view.node("a") == a
    assert view.node("never-written").status == NodeStatus.PENDING
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    assert view.all_nodes() == {"a": a.model_copy(update={"status": NodeStatus.SUCCEEDED})}
