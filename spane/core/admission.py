"""Admission decisions: whether a start may happen, what a refused child start tells
its parent, and which queued executions a freed ``max_executions`` slot activates. Pure.

The orchestrator service does the I/O around them (the plan, the idempotency key and
the slot live in the state store); these functions decide from what it read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from spane.compiler.plan import Plan
from spane.expressions.limits import check_value
from spane.schemas.commands import Command, NotifyParent
from spane.schemas.messages import ActivateExecution, ChildFinished, StartExecution
from spane.schemas.state import ErrorInfo, ExecutionStatus


@dataclass(frozen=True, slots=True)
class StartRefused:
    """Why a start cannot happen: ``kind`` is the error type a parent sees."""

    kind: str
    reason: str


def screen_start(plan: Plan, start: StartExecution, max_value_bytes: int) -> StartRefused | None:
    """Refuse a start whose input is too big, not JSON, or fails ``input_schema`` (a loop
    body's input is the loop's item, not checked against the workflow's schema)."""
    problem = check_value(
        start.input,
        what="execution input",
        schema=plan.input_schema if start.body is None else None,
        max_bytes=max_value_bytes,
    )
    return StartRefused("InvalidInput", problem) if problem is not None else None


def needs_slot(plan: Plan, start: StartExecution) -> bool:
    """Whether the start takes a ``max_executions`` slot (top-level executions only)."""
    return bool(plan.max_executions) and start.parent is None and start.body is None


def refusal_commands(start: StartExecution, refused: StartRefused) -> list[Command]:
    """What a refused start makes happen: a child's parent is told its node failed."""
    if start.parent is None:
        return []
    notice = ChildFinished(
        execution_id=start.parent.execution_id,
        node_id=start.parent.node_id,
        iteration=start.parent.iteration,
        child_execution_id=start.execution_id,
        status=ExecutionStatus.FAILED,
        error=ErrorInfo(type=refused.kind, message=refused.reason),
    )
    return [NotifyParent(notice)]


def activations(holders: Mapping[str, ExecutionStatus | None]) -> list[ActivateExecution]:
    """After a slot was released: every slot holder still PENDING gets (again) its
    activation. One promoted by an earlier release whose activation was lost to a crash
    is recovered this way; activation is idempotent, so a repeat changes nothing."""
    return [
        ActivateExecution(execution_id=execution_id)
        for execution_id, status in holders.items()
        if status == ExecutionStatus.PENDING
    ]
