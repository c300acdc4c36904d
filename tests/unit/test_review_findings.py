"""Review findings on the pure core and the embedded stores (each test fails today)."""

from __future__ import annotations

from typing import Any

from spane import Engine, TaskRegistry
from spane.schemas.commands import CancelChild, StartChild
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import ChildFinished
from spane.schemas.state import ExecutionStatus, NodeStatus, TimerKind
from spane.state.memory import MemoryStateStore
from tests.unit.harness import Harness


def spec(*nodes: dict[str, Any], **extra: Any):
    return spec_from_data({"id": "t", "nodes": list(nodes), **extra})


# ---------------------------------------------------------------------------------------
# Finding #6: NodeStep.on_child_finished accepts a ChildFinished from *any* child the node ever
#     started (``child_execution_id in state.children``), not only from the current
#     attempt's child. The late result of a superseded attempt (its child timed out and
#     was cancelled, the retry started a new child) settles the node, and the live
#     child of the current attempt is orphaned (never cancelled).
def test_late_result_of_a_superseded_sub_workflow_attempt_is_ignored() -> None:
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


# ---------------------------------------------------------------------------------------
# Finding #8: MemoryStateStore retires finished executions only in ``commit``; an execution that
#     is already terminal when it is *created* (a workflow, or a loop-body iteration,
#     made only of inline control nodes finishes inside ``begin``) never enters the
#     retention deque, so the embedded store grows without bound.
async def test_executions_finished_at_creation_are_retired_too() -> None:
    store = MemoryStateStore(max_finished=3)
    async with Engine(registry=TaskRegistry(), state=store, pools=[]) as engine:
        await engine.register(
            {"id": "instant", "nodes": [{"id": "t", "type": "transform", "output": "${ input }"}]}
        )
        for i in range(20):
            result = await engine.run("instant", i, timeout=5)
            assert result.succeeded
        kept = len(await store.list_executions(limit=1000))
    assert kept <= 3, f"{kept} finished executions kept, retention is 3"
