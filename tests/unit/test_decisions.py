"""The decision core, driven purely: joins, ports, retries, timers, commands."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spane.compiler.compile import compile_plan
from spane.core.joins import Verdict, join_verdict
from spane.schemas.commands import CancelTask, DispatchTask, EmitEvent, ScheduleTimer
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import (
    AttemptLost,
    CancelCommand,
    PauseCommand,
    ResumeCommand,
    SignalCommand,
    TaskHeartbeat,
    TaskMessage,
    TaskResult,
)
from spane.schemas.state import ExecutionStatus, NodeStatus, TimerKind
from tests.unit.harness import Harness, fail_with
from tests.unit.strategies import flag_inputs, random_dags


def spec(*nodes: dict[str, Any], **extra: Any):
    return spec_from_data({"id": "t", "nodes": list(nodes), **extra})


def fn(node_id: str, *after: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "function": "f", "after": list(after), **fields}


# ---------------------------------------------------------------- joins (pure)
def _join_node(join: Any, parents: int):
    nodes = [fn(f"p{i}") for i in range(parents)]
    nodes.append(fn("j", *[f"p{i}" for i in range(parents)], join=join))
    return compile_plan(spec(*nodes)).node("j")


@pytest.mark.parametrize(
    ("join", "parents", "edges", "verdict"),
    [
        ("all", 2, {"p0.success": True}, Verdict.WAIT),
        ("all", 2, {"p0.success": True, "p1.success": False}, Verdict.FIRE),
        ("all", 2, {"p0.success": False, "p1.success": False}, Verdict.SKIP),
        ("any", 3, {"p0.success": False}, Verdict.WAIT),
        ("any", 3, {"p2.success": True}, Verdict.FIRE),
        ("any", 2, {"p0.success": False, "p1.success": False}, Verdict.SKIP),
        ({"at_least": 2}, 3, {"p0.success": True}, Verdict.WAIT),
        ({"at_least": 2}, 3, {"p0.success": True, "p1.success": True}, Verdict.FIRE),
        ({"at_least": 2}, 3, {"p0.success": False, "p1.success": False}, Verdict.SKIP),
        ({"at_least": 3}, 3, {"p0.success": False}, Verdict.SKIP),
    ],
)
def test_join_verdicts(join: Any, parents: int, edges: dict[str, bool], verdict: Verdict) -> None:
    fired = sum(1 for value in edges.values() if value)
    assert join_verdict(_join_node(join, parents), len(edges), fired) is verdict


# --------------------------------------------------------- whole executions
def test_chain_passes_outputs_and_succeeds() -> None:
    h = Harness(spec(fn("a"), fn("b", "a"), fn("c", "b")), lambda t: (True, t.input))
    meta = h.start({"x": 1}).run()
    assert meta.status == ExecutionStatus.SUCCEEDED
    assert meta.output == {"x": 1}
    assert [n for n, s in h.node_events() if s == "succeeded"] == ["a", "b", "c"]


def test_task_ids_are_deterministic_and_attempt_scoped() -> None:
    h = Harness(
        spec(fn("a", retry={"max_attempts": 2, "initial_interval": 1})),
        lambda t: (t.attempt == 2, {"ok": 1} if t.attempt == 2 else fail_with()),
    )
    h.start().run()
    ids = [c.task.task_id for c in h.commands if isinstance(c, DispatchTask)]
    assert ids == ["e1:a:1", "e1:a:2"]


def test_retry_is_a_durable_timer_with_backoff() -> None:
    h = Harness(
        spec(fn("a", retry={"max_attempts": 3, "initial_interval": 2, "jitter": False})),
        lambda t: (False, fail_with()),
    )
    h.start()
    h.complete(h.tasks.popleft())
    timers = [
        c.timer
        for c in h.commands
        if isinstance(c, ScheduleTimer) and c.timer.kind is not TimerKind.LIVENESS
    ]
    assert [(t.kind, t.fire_at - 1000.0) for t in timers] == [(TimerKind.RETRY, 2.0)]
    assert h.node("a").status == NodeStatus.WAITING
    meta = h.run()
    assert meta.status == ExecutionStatus.FAILED
    assert h.node("a").attempt == 3
    assert meta.error is not None
    assert meta.error.attempt == 3


def test_non_retryable_failure_skips_the_retry_policy() -> None:
    h = Harness(
        spec(fn("a", retry={"max_attempts": 5})), lambda t: (False, fail_with(non_retryable=True))
    )
    meta = h.start().run()
    assert meta.status == ExecutionStatus.FAILED
    assert h.node("a").attempt == 1


def test_stale_result_of_a_superseded_attempt_is_ignored() -> None:
    h = Harness(spec(fn("a", timeout=1, retry={"max_attempts": 2, "initial_interval": 0})))
    h.start()
    first = h.tasks.popleft()
    h.fire_next_timer()  # attempt 1 times out -> retry timer
    assert any(isinstance(c, CancelTask) and c.task_id == "e1:a:1" for c in h.commands)
    h.fire_next_timer()  # retry -> attempt 2 dispatched
    second = h.tasks.popleft()
    assert second.attempt == 2
    h.send(
        TaskResult(
            task_id=first.task_id, execution_id="e1", node_id="a", attempt=1, ok=True, output="late"
        )
    )
    assert h.node("a").status == NodeStatus.RUNNING
    h.complete(second)
    assert h.meta.status == ExecutionStatus.SUCCEEDED
    assert h.meta.output == {"node": "a"}


def test_lost_attempt_runs_again_without_using_a_retry() -> None:
    h = Harness(spec(fn("a")))  # max_attempts 1: a real failure would fail the execution
    h.start()
    lost = h.tasks.popleft()
    assert f"{TimerKind.LIVENESS}:e1:a:1" in h.timers
    h.send(AttemptLost(execution_id="e1", node_id="a", attempt=1, reason="worker died"))
    assert f"{TimerKind.LIVENESS}:e1:a:1" not in h.timers
    again = h.tasks.popleft()
    assert (again.attempt, h.node("a").lost) == (2, 1)
    h.send(AttemptLost(execution_id="e1", node_id="a", attempt=1, reason="stale"))
    assert h.node("a").attempt == 2
    h.complete(lost)  # the lost attempt's late result is ignored
    assert h.node("a").status == NodeStatus.RUNNING
    h.complete(again)
    assert h.meta.status == ExecutionStatus.SUCCEEDED


def test_heartbeat_pushes_the_attempt_timeout() -> None:
    h = Harness(spec(fn("a", timeout=10)))
    h.start()
    task = h.tasks[0]
    h.now += 8
    h.send(TaskHeartbeat(task_id=task.task_id, execution_id="e1", node_id="a", attempt=1))
    timer = h.timers[f"{TimerKind.ATTEMPT_TIMEOUT}:e1:a:1"]
    assert timer.fire_at == pytest.approx(1018.0)


def test_unhandled_failure_cancels_siblings_and_runs_finally() -> None:
    def behaviour(task: TaskMessage):
        return (False, fail_with()) if task.node_id == "bad" else (True, task.node_id)

    h = Harness(
        spec(fn("bad"), fn("slow"), fn("after_slow", "slow"), fn("fin", "bad.always")), behaviour
    )
    h.start()
    bad = next(t for t in h.tasks if t.node_id == "bad")
    h.complete(bad)
    assert h.node("slow").status == NodeStatus.CANCELLED
    assert any(isinstance(c, CancelTask) and c.node_id == "slow" for c in h.commands)
    h.tasks = type(h.tasks)(t for t in h.tasks if t.node_id == "fin")
    meta = h.run()
    assert meta.status == ExecutionStatus.FAILED
    assert meta.error is not None
    assert meta.error.node_id == "bad"
    assert h.node("fin").status == NodeStatus.SUCCEEDED
    assert h.node("after_slow").status == NodeStatus.SKIPPED


def test_pause_queues_ready_nodes_and_holds_timers() -> None:
    h = Harness(spec(fn("a"), fn("b", "a"), {"id": "d", "type": "delay", "duration": 5}))
    h.start()
    h.send(PauseCommand(execution_id="e1"))
    h.complete(h.tasks.popleft())
    assert h.node("b").status == NodeStatus.READY
    assert not h.tasks
    h.fire_next_timer()  # the delay fires while paused: held
    assert h.node("d").status == NodeStatus.WAITING
    h.send(ResumeCommand(execution_id="e1"))
    assert h.node("d").status == NodeStatus.SUCCEEDED
    assert [t.node_id for t in h.tasks] == ["b"]
    assert h.run().status == ExecutionStatus.SUCCEEDED


def test_cancel_runs_no_always_branch() -> None:
    h = Harness(spec(fn("a"), fn("fin", "a.always")))
    h.start()
    h.send(CancelCommand(execution_id="e1", reason="operator"))
    assert h.meta.status == ExecutionStatus.CANCELLED
    assert h.meta.error is not None
    assert h.meta.error.message == "operator"
    assert h.node("fin").status == NodeStatus.PENDING
    h.send(CancelCommand(execution_id="e1"))
    assert h.rejections == ["execution e1 is already cancelled"]


def test_signal_without_a_waiting_node_is_rejected_and_changes_nothing() -> None:
    h = Harness(spec({"id": "w", "type": "wait_for_signal", "signal": "go"}))
    h.start()
    before = h.meta
    h.send(SignalCommand(execution_id="e1", name="stop", data=1))
    assert "waiting for: go" in h.rejections[0]
    assert h.meta == before
    h.send(SignalCommand(execution_id="e1", name="go", data={"ok": True}))
    assert h.meta.status == ExecutionStatus.SUCCEEDED
    assert h.meta.output == {"ok": True}


def test_max_concurrency_queues_by_priority() -> None:
    h = Harness(spec(fn("a"), fn("b"), fn("c", priority=5), max_concurrency=1))
    h.start()
    assert [t.node_id for t in h.tasks] == ["a"]
    assert h.meta.queue == ("c", "b")
    h.complete(h.tasks.popleft())
    assert [t.node_id for t in h.tasks] == ["c"]


def test_node_events_can_be_turned_off() -> None:
    from spane.core.decisions import begin
    from spane.core.options import CoreOptions
    from spane.schemas.messages import StartExecution

    plan = compile_plan(spec(fn("a")))
    _, decision = begin(
        plan, StartExecution(execution_id="e", workflow_id="t"), 0.0, CoreOptions(node_events=False)
    )
    events = [c for c in decision.commands if isinstance(c, EmitEvent)]
    assert [e.routing_key for e in events] == ["execution.t.started"]


# ---------------------------------------------------------------- properties
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags(), flag_inputs(), st.data())
def test_random_dags_settle_every_node_exactly_once_and_terminate(workflow, flags, data) -> None:
    ids = [node.id for node in workflow.nodes]
    failing = data.draw(st.sets(st.sampled_from(ids), max_size=3))

    def behaviour(task: TaskMessage):
        if task.node_id in failing:
            return False, fail_with(non_retryable=True)
        return True, task.node_id

    h = Harness(workflow, behaviour)
    meta = h.start(flags).run()
    assert meta.status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED)
    counts = h.settle_counts()
    assert all(count == 1 for count in counts.values()), counts
    dispatched = [c.task.task_id for c in h.commands if isinstance(c, DispatchTask)]
    assert len(dispatched) == len(set(dispatched))
    if meta.status == ExecutionStatus.SUCCEEDED:
        assert set(counts) == set(ids)
        assert meta.unsettled == 0
    else:
        assert meta.error is not None
        assert not meta.active
        assert not meta.queue
