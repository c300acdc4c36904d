"""The core accepts only news that matches what it dispatched or armed: a result must
carry the task id of the running attempt, an execution timeout the deadline the
execution armed. Anything else changes nothing (the trust model in docs/operations.md)."""

from __future__ import annotations

from typing import Any

from spane.compiler.compile import compile_plan
from spane.core import begin, decide
from spane.schemas.commands import DispatchTask
from spane.schemas.messages import StartExecution, TaskResult, TimerFired
from spane.schemas.state import ExecutionStatus, NodeStatus, Timer, TimerKind
from spane.schemas.view import ExecutionView
from spane.schemas.workflow import WorkflowSpec

NOW = 1_000.0


def _start(**fields: Any) -> tuple[Any, ExecutionView, DispatchTask]:
    spec = WorkflowSpec.model_validate(
        {"id": "wf", "nodes": [{"id": "a", "type": "function", "function": "t.a"}], **fields}
    )
    plan = compile_plan(spec)
    view, decision = begin(plan, StartExecution(execution_id="e1", workflow_id="wf"), NOW)
    [dispatch] = [c for c in decision.commands if isinstance(c, DispatchTask)]
    return plan, view, dispatch


def _result(task_id: str, output: Any = "ok") -> TaskResult:
    return TaskResult(
        task_id=task_id, execution_id="e1", node_id="a", attempt=1, ok=True, output=output
    )


def test_a_result_with_another_task_id_for_the_running_attempt_is_ignored():
    plan, view, dispatch = _start()
    decision = decide(plan, view, _result("e1:a:1-forged", "FORGED"), NOW + 1)
    assert decision.commands == []
    assert view.node("a").status == NodeStatus.RUNNING
    decide(plan, view, _result(dispatch.task.task_id, "real"), NOW + 2)
    assert view.meta.status == ExecutionStatus.SUCCEEDED
    assert view.meta.output == "real"


def _timeout_at(fire_at: float) -> TimerFired:
    timer = Timer(
        id="execution_timeout:e1::0",
        execution_id="e1",
        kind=TimerKind.EXECUTION_TIMEOUT,
        fire_at=fire_at,
    )
    return TimerFired(timer=timer)


def test_an_execution_timeout_for_a_workflow_without_one_is_ignored():
    plan, view, _ = _start()
    assert decide(plan, view, _timeout_at(NOW + 1), NOW + 1).commands == []
    assert view.meta.status == ExecutionStatus.RUNNING


def test_an_execution_timeout_at_another_deadline_is_ignored_the_armed_one_applies():
    plan, view, _ = _start(timeout="10s")
    assert view.meta.deadline == NOW + 10
    assert decide(plan, view, _timeout_at(NOW + 5), NOW + 5).commands == []
    statuses = [view.meta.status]
    decide(plan, view, _timeout_at(NOW + 10), NOW + 10)
    statuses.append(view.meta.status)
    assert statuses == [ExecutionStatus.RUNNING, ExecutionStatus.TIMED_OUT]
