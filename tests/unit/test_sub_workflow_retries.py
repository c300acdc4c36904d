"""A retried ``sub_workflow`` node: each attempt starts a child of its own, and only the
current attempt's child settles the node (the pure core, driven by the harness)."""

from __future__ import annotations

from typing import Any

from spane.schemas.commands import CancelChild, StartChild
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import ChildFinished
from spane.schemas.state import ExecutionStatus, NodeStatus, TimerKind
from spane.schemas.workflow import WorkflowSpec
from tests.unit.harness import Harness


def spec(*nodes: dict[str, Any], **extra: Any) -> WorkflowSpec:
    return spec_from_data({"id": "t", "nodes": list(nodes), **extra})


def test_late_result_of_a_superseded_child_is_ignored() -> None:
    """Attempt 1's child timed out and was cancelled, the retry started a new child: a
    late ChildFinished from the first child must neither settle the node nor orphan the
    live child of the current attempt."""
    h = Harness(
        spec(
            {
                "id": "s",
                "type": "sub_workflow",
                "workflow": "child",
                "timeout": 5,
                "retry": {"max_attempts": 2, "initial_interval": 0.1, "jitter": False},
            }
        )
    )
    h.start()
    # attempt 1's child does not finish in time: CHILD_TIMEOUT, then the retry timer
    assert h.fire_next_timer()
    assert h.node("s").status == NodeStatus.WAITING
    assert any(t.kind is TimerKind.RETRY for t in h.timers.values())
    assert h.fire_next_timer()
    starts = [c.start.execution_id for c in h.commands if isinstance(c, StartChild)]
    assert starts == ["e1.s.1", "e1.s.2"]
    assert h.node("s").attempt == 2

    # the cancelled first child reports late (e.g. it had just succeeded)
    h.send(
        ChildFinished(
            execution_id="e1",
            node_id="s",
            child_execution_id="e1.s.1",
            status=ExecutionStatus.SUCCEEDED,
            output="stale output of attempt 1",
        )
    )
    cancelled = [c.execution_id for c in h.commands if isinstance(c, CancelChild)]
    assert h.node("s").status == NodeStatus.WAITING, (
        f"a superseded child settled the node ({h.node('s').status}, "
        f"output {h.node('s').output!r}) while child e1.s.2 runs; "
        f"children cancelled: {cancelled}"
    )
