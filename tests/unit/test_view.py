"""The working copy of an execution: changes recorded, records copied correctly."""

from __future__ import annotations

import pytest

from spane.schemas.state import ExecutionMeta, NodeState, NodeStatus
from spane.schemas.view import ExecutionView, MissingLoopDataError, MissingNodesError, evolve


def test_evolve_equals_model_copy() -> None:
    meta = ExecutionMeta(id="e", workflow_id="w", version=1, created_at=0.0, vars={"a": 1})
    changes = {"running": 3, "active": ("x", "y")}
    evolved = evolve(meta, changes)
    assert evolved == meta.model_copy(update=changes)
    assert evolved.model_fields_set == meta.model_copy(update=changes).model_fields_set
    assert evolved.model_dump_json() == meta.model_copy(update=changes).model_dump_json()
    assert meta.running == 0  # the original is untouched


def test_view_records_changed_nodes_and_reads_pending_by_default() -> None:
    view = ExecutionView(ExecutionMeta(id="e", workflow_id="w", version=1, created_at=0.0), {})
    assert view.node("a").status == NodeStatus.PENDING
    assert not view.dirty
    view.update_node("a", status=NodeStatus.RUNNING, attempt=1)
    assert view.changed_nodes == {"a": NodeState(status=NodeStatus.RUNNING, attempt=1)}
    assert view.dirty


def test_active_and_queue_change_in_place_while_deciding_and_reach_the_meta_after() -> None:
    meta = ExecutionMeta(
        id="e", workflow_id="w", version=1, created_at=0.0, active=("a", "b"), queue=("q1",)
    )
    view = ExecutionView(meta, {})
    with view.deciding():
        view.set_active("c", True)
        view.set_active("a", False)
        view.set_active("c", True)  # already active: no change
        view.insert_queued(0, "q0")
        view.update_meta(running=2)
        assert list(view.active()) == ["b", "c"]
        assert list(view.queue()) == ["q0", "q1"]
        assert view.pop_queued() == "q0"
    assert view.dirty
    assert (view.meta.active, view.meta.queue, view.meta.running) == (("b", "c"), ("q1",), 2)
    assert meta.active == ("a", "b")  # the loaded meta is untouched
    view.update_meta(active=(), queue=())  # an explicit value replaces the sets
    assert (view.meta.active, view.meta.queue) == ((), ())
    assert list(view.active()) == []


def test_a_partial_view_reads_fetched_nodes_and_refuses_the_others() -> None:
    meta = ExecutionMeta(id="e", workflow_id="w", version=1, created_at=0.0)
    running = NodeState(status=NodeStatus.RUNNING, attempt=1)
    nodes = {"a": running}
    view = ExecutionView(meta, nodes, 3, fetched=("a", "b"))  # b: never written
    assert view.node("a") == running
    assert view.node("b").status == NodeStatus.PENDING
    with pytest.raises(MissingNodesError) as missing:
        view.node("c")
    assert missing.value.node_ids == ("c",)
    with pytest.raises(MissingNodesError):
        view.update_node("c", status=NodeStatus.SKIPPED)  # an update reads the node first
    view.update_node("b", status=NodeStatus.SKIPPED)
    assert view.node("b").status == NodeStatus.SKIPPED
    with pytest.raises(MissingNodesError):
        view.all_nodes()
    assert ExecutionView(meta, nodes).all_nodes() == {"a": running}  # complete


def test_a_settled_view_reads_what_its_commit_stored_and_leaves_the_load_alone() -> None:
    meta = ExecutionMeta(id="e", workflow_id="w", version=1, created_at=0.0)
    loaded = {"a": NodeState(status=NodeStatus.SUCCEEDED, attempt=1)}
    view = ExecutionView(meta, loaded, revision=4, loops={"l:1:i:0": 1}, fetched=["a", "b"])
    with view.deciding():
        view.update_node("b", status=NodeStatus.RUNNING, attempt=1)
        view.set_active("b", True)
    settled = view.settled(5)
    assert settled.revision == 5
    assert not settled.dirty
    assert settled.meta.active == ("b",)
    assert settled.node("a") == loaded["a"]
    assert settled.node("b") == NodeState(status=NodeStatus.RUNNING, attempt=1)
    assert loaded == {"a": NodeState(status=NodeStatus.SUCCEEDED, attempt=1)}  # not copied into
    with pytest.raises(MissingNodesError):
        settled.node("c")  # the load did not fetch it
    with pytest.raises(MissingLoopDataError):
        settled.loop_values(["l:1:i:0"])  # loop data is loaded again, never kept

    settled.update_node("b", status=NodeStatus.SUCCEEDED, attempt=1)
    again = settled.settled(6)
    assert again.node("b").status == NodeStatus.SUCCEEDED
    assert set(ExecutionView(meta, {"x": NodeState()}).settled(1).all_nodes()) == {"x"}
    whole = ExecutionView(meta, loaded)
    whole.update_node("c", status=NodeStatus.RUNNING, attempt=1)
    assert whole.settled(1).all_nodes() == {**loaded, "c": NodeState(status="running", attempt=1)}
