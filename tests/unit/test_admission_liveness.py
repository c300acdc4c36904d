"""The adapter's decisions made pure: start admission, slot promotion, liveness. Table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from spane.compiler.compile import compile_plan
from spane.core.admission import (
    StartRefused,
    activations,
    needs_slot,
    refusal_commands,
    screen_start,
)
from spane.core.liveness import CheckAgain, Deliver, Lost, Settled, liveness
from spane.schemas.claims import ClaimInfo
from spane.schemas.commands import NotifyParent
from spane.schemas.messages import StartExecution, TaskResult
from spane.schemas.state import ExecutionStatus, NodeState, NodeStatus, ParentLink, Timer, TimerKind
from spane.schemas.workflow import WorkflowSpec

PLAN = compile_plan(
    WorkflowSpec.model_validate(
        {
            "id": "wf",
            "max_executions": 2,
            "input_schema": {"type": "object", "required": ["n"]},
            "nodes": [{"id": "a", "type": "function", "function": "t.a"}],
        }
    )
)
PARENT = ParentLink(execution_id="p", node_id="sub")


def _start(input: Any = None, **extra: Any) -> StartExecution:
    return StartExecution(execution_id="e", workflow_id="wf", input=input, **extra)


@pytest.mark.parametrize(
    ("start", "refused_kind", "reason_part"),
    [
        (_start({"n": 1}), None, None),
        (_start({}), "InvalidInput", "'n' is a required property"),
        (_start({"n": "x" * 200}), "InvalidInput", "over the limit of 100 bytes"),
        (_start({"n": {1, 2}}), "InvalidInput", "not JSON-serialisable"),
        (_start({}, body="loop", parent=PARENT), None, None),  # a loop item: no schema
    ],
)
def test_screen_start(start: StartExecution, refused_kind: str | None, reason_part: str | None):
    refused = screen_start(PLAN, start, max_value_bytes=100)
    if refused_kind is None:
        assert refused is None
    else:
        assert refused is not None
        assert refused.kind == refused_kind
        assert reason_part is not None
        assert reason_part in refused.reason


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (_start(), True),
        (_start(parent=PARENT), False),
        (_start(body="loop", parent=PARENT), False),
    ],
)
def test_only_top_level_starts_take_a_slot(start: StartExecution, expected: bool):
    assert needs_slot(PLAN, start) is expected


def test_a_refused_top_level_start_commands_nothing():
    assert refusal_commands(_start(), StartRefused("InvalidInput", "bad")) == []


def test_a_refused_child_start_fails_its_parent_node():
    (command,) = refusal_commands(
        _start(parent=ParentLink(execution_id="p", node_id="sub", iteration=3)),
        StartRefused("WorkflowNotFound", "no such workflow"),
    )
    assert isinstance(command, NotifyParent)
    notice = command.message
    assert (notice.execution_id, notice.node_id, notice.iteration) == ("p", "sub", 3)
    assert notice.status == ExecutionStatus.FAILED
    assert notice.error is not None
    assert (notice.error.type, notice.error.message) == ("WorkflowNotFound", "no such workflow")


def test_a_released_slot_activates_every_pending_holder():
    holders = {
        "a": ExecutionStatus.RUNNING,
        "b": ExecutionStatus.PENDING,
        "c": None,  # gone (expired): nothing to activate
        "d": ExecutionStatus.PENDING,
    }
    assert [m.execution_id for m in activations(holders)] == ["b", "d"]


TIMER = Timer(
    id="liveness:e:a:2",
    execution_id="e",
    kind=TimerKind.LIVENESS,
    fire_at=100.0,
    node_id="a",
    attempt=2,
)
RESULT = TaskResult(task_id="e:a:2", execution_id="e", node_id="a", attempt=2, ok=True)
RUNNING_2 = NodeState(status=NodeStatus.RUNNING, attempt=2)


@pytest.mark.parametrize(
    ("claim", "node", "verdict"),
    [
        (None, None, CheckAgain),  # still queued
        (ClaimInfo("w1", expires_at=150.0), None, CheckAgain),  # live claim
        (ClaimInfo("w1", expires_at=90.0), None, Lost),  # expired, no result
        (ClaimInfo("w1", expires_at=90.0, result=RESULT), RUNNING_2, Deliver),
        (ClaimInfo("w1", expires_at=150.0, result=RESULT), RUNNING_2, Deliver),
        (ClaimInfo("w1", 90.0, RESULT), NodeState(status=NodeStatus.SUCCEEDED, attempt=2), Settled),
        (ClaimInfo("w1", 90.0, RESULT), NodeState(status=NodeStatus.RUNNING, attempt=3), Settled),
        (ClaimInfo("w1", 90.0, RESULT), None, Settled),
    ],
)
def test_liveness(claim: ClaimInfo | None, node: NodeState | None, verdict: type):
    assert isinstance(liveness(TIMER, claim, node, now=100.0, period=15.0), verdict)


def test_liveness_checks_again_one_period_later():
    verdict = liveness(TIMER, None, None, now=100.0, period=15.0)
    assert isinstance(verdict, CheckAgain)
    assert verdict.timer.fire_at == 115.0
    assert verdict.timer.id == TIMER.id


def test_a_lost_attempt_names_the_worker():
    verdict = liveness(TIMER, ClaimInfo("w7", expires_at=90.0), None, now=100.0, period=15.0)
    assert isinstance(verdict, Lost)
    assert verdict.message.attempt == 2
    assert "worker w7 stopped renewing its claim on e:a:2" in verdict.message.reason


def test_a_stored_result_is_delivered_as_it_was():
    verdict = liveness(TIMER, ClaimInfo("w1", 90.0, RESULT), RUNNING_2, now=100.0, period=15.0)
    assert isinstance(verdict, Deliver)
    assert verdict.result is RESULT
