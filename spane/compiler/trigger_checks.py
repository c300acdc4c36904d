"""Validation of a definition's cron and webhook triggers (DESIGN §2, "Validation"). Pure.

A cron trigger's expression must parse (5 fields, or 6 with seconds first; ``cronsim``
syntax) and name an IANA time zone known to ``zoneinfo``; webhook paths must be unique
within the workflow. Problems are located at ``triggers[<i>].cron``,
``triggers[<i>].timezone`` and ``triggers[<i>].webhook.path``. Filters and inputs are
checked with the other expressions (:mod:`spane.compiler.expression_checks`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from spane.errors import Problem
from spane.schemas.workflow import CronTrigger, WebhookTrigger, WorkflowSpec

__all__ = ["cron_expression_problem", "timezone_problem", "trigger_schedule_problems"]

_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


def cron_expression_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression (None when it is)."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        return (
            f"a cron expression has 5 fields (minute hour day month weekday), or 6 with "
            f"seconds first; got {len(fields)}"
        )
    try:
        CronSim(" ".join(fields), _PROBE)
    except (CronSimError, ValueError, IndexError) as exc:
        return f"invalid cron expression {expression!r}: {exc}"
    return None


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone (None when it is)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}"
    return None


def _timezone_hint(name: str) -> str:
    return "an IANA name such as 'UTC' or 'Europe/Paris'" if name else "use 'UTC'"


def trigger_schedule_problems(spec: WorkflowSpec) -> list[Problem]:
    """Problems of the cron expressions, time zones and webhook paths of ``spec``."""
    problems: list[Problem] = []
    paths: dict[str, int] = {}
    for position, trigger in enumerate(spec.triggers):
        loc = f"triggers[{position}]"
        if isinstance(trigger, CronTrigger):
            reason = cron_expression_problem(trigger.cron)
            if reason is not None:
                problems.append(Problem(f"{loc}.cron", reason, "e.g. '*/5 * * * *'"))
            reason = timezone_problem(trigger.timezone)
            if reason is not None:
                hint = _timezone_hint(trigger.timezone)
                problems.append(Problem(f"{loc}.timezone", reason, hint))
        elif isinstance(trigger, WebhookTrigger):
            path = trigger.webhook.path
            if path in paths:
                message = f"webhook path {path!r} is already used by triggers[{paths[path]}]"
                problems.append(Problem(f"{loc}.webhook.path", message))
            paths.setdefault(path, position)
    return problems
