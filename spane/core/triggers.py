"""Event triggers (DESIGN §2 "Trigger events"): which workflows an event starts. Pure.

A trigger event is a routing key plus a JSON body. A structured-mode CloudEvent (a body
with ``specversion``) is the event itself; any other body becomes
``{type: <routing key>, data: <body>}``. Each workflow ``event`` trigger whose pattern
matches the routing key and whose ``filter`` holds starts one execution, with the
trigger's ``input`` (rendered with ``event`` in context) or ``event.data`` as input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spane.compiler.plan import Plan
from spane.errors import ExpressionError
from spane.expressions import (
    Expression,
    Template,
    compile_expression,
    compile_template,
    evaluate_condition,
)
from spane.schemas.topics import topic_matches
from spane.schemas.workflow import EventTrigger


@dataclass(frozen=True, slots=True)
class TriggerTarget:
    workflow_id: str
    version: int
    index: int
    """Position of the trigger in the workflow's ``triggers``."""
    pattern: str
    filter: Expression | None
    input: Template | None


@dataclass(frozen=True, slots=True)
class TriggerMatch:
    target: TriggerTarget
    input: Any
    execution_id: str


@dataclass(frozen=True, slots=True)
class TriggerProblem:
    target: TriggerTarget
    reason: str


def build_index(plans: Iterable[Plan]) -> list[TriggerTarget]:
    """Every event trigger of the given (latest) plans."""
    targets: list[TriggerTarget] = []
    for plan in plans:
        for index, trigger in enumerate(plan.spec.triggers):
            if not isinstance(trigger, EventTrigger):
                continue
            targets.append(
                TriggerTarget(
                    workflow_id=plan.workflow_id,
                    version=plan.version,
                    index=index,
                    pattern=trigger.event,
                    filter=compile_expression(trigger.filter) if trigger.filter else None,
                    input=compile_template(trigger.input) if trigger.input is not None else None,
                )
            )
    return targets


def normalize_event(routing_key: str, body: Any) -> dict[str, Any]:
    """The ``event`` of expressions: the CloudEvent itself, or ``{type, data}``."""
    if isinstance(body, dict) and "specversion" in body:
        return body
    return {"type": routing_key, "data": body}


def trigger_execution_id(message_id: str, target: TriggerTarget) -> str:
    """Deterministic, so a redelivered trigger starts nothing new."""
    digest = hashlib.sha256(f"{message_id}|{target.workflow_id}|{target.index}".encode())
    return f"t-{digest.hexdigest()[:32]}"


def match_event(
    targets: Iterable[TriggerTarget], routing_key: str, body: Any, message_id: str
) -> tuple[list[TriggerMatch], list[TriggerProblem]]:
    """The executions this event starts, and the triggers that failed to evaluate."""
    event = normalize_event(routing_key, body)
    context = {"event": event}
    matches: list[TriggerMatch] = []
    problems: list[TriggerProblem] = []
    for target in targets:
        if not topic_matches(target.pattern, routing_key):
            continue
        try:
            if target.filter is not None and not evaluate_condition(target.filter, context):
                continue
            value = target.input.render(context) if target.input else event.get("data")
        except ExpressionError as exc:
            problems.append(TriggerProblem(target, str(exc)))
            continue
        matches.append(TriggerMatch(target, value, trigger_execution_id(message_id, target)))
    return matches, problems
