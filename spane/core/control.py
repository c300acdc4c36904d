"""Inline evaluation of the control nodes that finish in one step. Pure.

Each function takes the node, its data and its expression context and returns an
:class:`Outcome`; nodes that wait (delay, signal, children) are handled by the
decision core, which owns timers and child executions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spane.compiler.plan import PORT_DEFAULT, PORT_SUCCESS, PlanNode
from spane.errors import ExpressionError
from spane.expressions import evaluate_condition
from spane.schemas.state import ErrorInfo
from spane.schemas.workflow import (
    DelayNode,
    FailNode,
    NoopNode,
    SetNode,
    SwitchNode,
    TransformNode,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an inline node settled: ``error`` set means failed, else succeeded."""

    output: Any = None
    ports: tuple[str, ...] = (PORT_SUCCESS,)
    error: ErrorInfo | None = None
    set_vars: Mapping[str, Any] = field(default_factory=dict)


def expression_failure(node: PlanNode, where: str, exc: ExpressionError) -> ErrorInfo:
    """A runtime expression error, named by node and field."""
    return ErrorInfo(
        type="ExpressionError",
        message=f"node {node.id!r}, field {where!r}: {exc}",
        node_id=node.id,
        attempt=1,
    )


def _switch(node: PlanNode, data: Any, context: Mapping[str, Any]) -> Outcome:
    for index, case in enumerate(node.cases):
        try:
            matched = evaluate_condition(case.condition, context)
        except ExpressionError as exc:
            return Outcome(error=expression_failure(node, f"cases[{index}].when", exc))
        if matched:
            return Outcome(output=data, ports=(PORT_SUCCESS, case.name))
    return Outcome(output=data, ports=(PORT_SUCCESS, PORT_DEFAULT))


def _render(node: PlanNode, name: str, context: Mapping[str, Any]) -> tuple[Any, Outcome | None]:
    try:
        return node.templates[name].render(context), None
    except ExpressionError as exc:
        return None, Outcome(error=expression_failure(node, name, exc))


def _transform(node: PlanNode, data: Any, context: Mapping[str, Any]) -> Outcome:
    value, failed = _render(node, "output", context)
    return failed or Outcome(output=value)


def _set(node: PlanNode, data: Any, context: Mapping[str, Any]) -> Outcome:
    values, failed = _render(node, "vars", context)
    if failed:
        return failed
    return Outcome(output=values, set_vars=values)


def _fail(node: PlanNode, data: Any, context: Mapping[str, Any]) -> Outcome:
    value, failed = _render(node, "error", context)
    if failed:
        return failed
    if isinstance(value, dict):
        error = ErrorInfo(
            type=str(value.get("type", "Fail")),
            message=str(value.get("message", "failed")),
            node_id=node.id,
            attempt=1,
            details=value.get("details"),
        )
    else:
        error = ErrorInfo(type="Fail", message=str(value), node_id=node.id, attempt=1)
    return Outcome(error=error)


def run_inline(node: PlanNode, data: Any, context: Mapping[str, Any]) -> Outcome | None:
    """Settle a control node that finishes in the step that activates it; None for
    every other node type (tasks, waits, loops, children)."""
    match node.spec:
        case NoopNode():
            return Outcome(output=data)
        case SwitchNode():
            return _switch(node, data, context)
        case TransformNode():
            return _transform(node, data, context)
        case SetNode():
            return _set(node, data, context)
        case FailNode():
            return _fail(node, data, context)
        case _:
            return None


def delay_fire_at(node: PlanNode, spec: DelayNode, context: Mapping[str, Any], now: float) -> float:
    """When a delay node is due; raises ``ExpressionError``/``ValueError`` on a bad ``until``."""
    duration = spec.duration
    if duration is not None:
        return now + float(duration)
    until = node.templates["until"].render(context)
    if not isinstance(until, str):
        raise ValueError(f"'until' must be an ISO 8601 time, got {until!r}")
    moment = datetime.fromisoformat(until.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
