"""Cron triggers (DESIGN §2, ``triggers: [{cron: ..., timezone: ..., input: ...}]``). Pure.

Time comes in as ``now`` (Unix seconds); nothing here reads a clock. A schedule is a
cron expression (5 fields, or 6 with seconds first; parsed by ``cronsim``) read in an
IANA time zone, with Debian cron's daylight-saving rules:

- a job at a fixed time that falls in the spring-forward gap runs when the gap ends
  (``30 2 * * *`` in Europe/Paris runs at 03:00 CEST on the last Sunday of March);
- a job at a fixed time in the hour repeated at fall-back runs once, at its first
  occurrence; interval jobs (``*/30 * * * *``) run at every real instant that matches,
  so twice within the repeated hour.

A tick is identified by its instant (whole Unix seconds). What a cron loop fires after
a pause is :func:`due_tick`: the latest tick in ``(last, now]`` — one start however many
ticks were missed. Starts are idempotent per (workflow, trigger index, tick): the
execution id and start key come from :func:`cron_execution_id` / :func:`cron_start_key`,
so replicas that fire the same tick start one execution.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim

from spane.compiler.plan import Plan
from spane.compiler.trigger_checks import cron_expression_problem, timezone_problem
from spane.errors import ExpressionError
from spane.expressions import Template, compile_template
from spane.schemas.workflow import CronTrigger

__all__ = [
    "CronFire",
    "CronTarget",
    "Schedule",
    "cron_execution_id",
    "cron_start_key",
    "cron_targets",
    "due_fires",
    "due_tick",
    "latest_tick",
    "next_tick",
    "next_wake",
]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron expression in a time zone."""

    expression: str
    timezone: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Schedule:
        """Raises ``ValueError`` naming what is wrong (the compiler reports the same)."""
        problem = cron_expression_problem(expression) or timezone_problem(timezone)
        if problem is not None:
            raise ValueError(problem)
        return cls(" ".join(expression.split()), timezone, ZoneInfo(timezone))

    def _local(self, instant: float) -> datetime:
        return datetime.fromtimestamp(instant, UTC).astimezone(self.zone)

    def local_time(self, tick: float) -> str:
        """The tick in the schedule's zone, ISO 8601 with its offset."""
        return self._local(tick).isoformat()


def next_tick(schedule: Schedule, after: float) -> float | None:
    """The first tick strictly after ``after`` (None if the schedule never fires again)."""
    start = schedule._local(float(int(after)))  # ticks are whole seconds
    try:
        return next(CronSim(schedule.expression, start)).timestamp()
    except StopIteration:
        return None


def latest_tick(schedule: Schedule, at: float) -> float | None:
    """The last tick at or before ``at`` (None if there is none within 50 years).

    cronsim's reverse iteration finds a tick at or before ``at`` cheaply but can land
    on an earlier one around a fall-back hour; iterating forward from it gives the
    tick the forward schedule (the one that fires) has last.
    """
    whole = float(int(at))
    try:
        rough = next(CronSim(schedule.expression, schedule._local(whole + 1), reverse=True))
    except StopIteration:
        return None
    best: float | None = None
    cursor = min(rough.timestamp(), whole) - 1
    while (tick := next_tick(schedule, cursor)) is not None and tick <= whole:
        best = cursor = tick
    return best


def due_tick(schedule: Schedule, last: float, now: float) -> float | None:
    """The tick to fire at ``now`` when ``last`` was the last one fired (or the moment
    the trigger appeared): the latest tick in ``(last, now]``, else None."""
    tick = latest_tick(schedule, now)
    return tick if tick is not None and tick > last else None


# ----------------------------------------------------------------- targets and fires
@dataclass(frozen=True, slots=True)
class CronTarget:
    """One cron trigger of a workflow's latest version."""

    workflow_id: str
    version: int
    index: int
    """Position of the trigger in the workflow's ``triggers``."""
    schedule: Schedule
    input: Template | None
    since: float
    """When the version was registered: ticks before it are not fired."""

    @property
    def key(self) -> str:
        """Names the trigger's cursor (the last tick fired) in the state store."""
        return f"{self.workflow_id}:{self.index}"


@dataclass(frozen=True, slots=True)
class CronFire:
    """One start a cron loop should publish."""

    target: CronTarget
    tick: float
    input: Any
    execution_id: str
    start_key: str


@dataclass(frozen=True, slots=True)
class CronProblem:
    target: CronTarget
    tick: float
    reason: str


def cron_targets(plans: Iterable[tuple[Plan, float]]) -> list[CronTarget]:
    """Every cron trigger of the given (latest) plans, each with its registration time.
    A trigger that does not parse (a definition stored before validation knew cron)
    is left out."""
    targets: list[CronTarget] = []
    for plan, since in plans:
        for index, trigger in enumerate(plan.spec.triggers):
            if not isinstance(trigger, CronTrigger):
                continue
            try:
                schedule = Schedule.parse(trigger.cron, trigger.timezone)
            except ValueError:
                continue
            template = compile_template(trigger.input) if trigger.input is not None else None
            targets.append(
                CronTarget(plan.workflow_id, plan.version, index, schedule, template, since)
            )
    return targets


def cron_execution_id(workflow_id: str, index: int, tick: float) -> str:
    """Deterministic per (workflow, trigger, tick): a second replica's start is a no-op."""
    digest = hashlib.sha256(f"cron|{workflow_id}|{index}|{int(tick)}".encode())
    return f"c-{digest.hexdigest()[:32]}"


def cron_start_key(index: int, tick: float) -> str:
    """The start idempotency key (scoped by workflow in the state store)."""
    return f"cron:{index}:{int(tick)}"


def cron_event(target: CronTarget, tick: float) -> dict[str, Any]:
    """The ``event`` a cron trigger's ``input`` template sees."""
    return {
        "type": "cron",
        "time": target.schedule.local_time(tick),
        "timestamp": int(tick),
        "cron": target.schedule.expression,
        "timezone": target.schedule.timezone,
        "trigger": target.index,
    }


def due_fires(
    targets: Iterable[CronTarget], cursors: Mapping[str, float], now: float
) -> tuple[list[CronFire], list[CronProblem]]:
    """The starts due at ``now``: per trigger, the latest tick after its cursor (or
    after its registration when it has none), with the rendered input."""
    fires: list[CronFire] = []
    problems: list[CronProblem] = []
    for target in targets:
        last = max(cursors.get(target.key, target.since), target.since)
        tick = due_tick(target.schedule, last, now)
        if tick is None:
            continue
        try:
            value = (
                target.input.render({"event": cron_event(target, tick)}) if target.input else None
            )
        except ExpressionError as exc:
            problems.append(CronProblem(target, tick, str(exc)))
            continue
        execution_id = cron_execution_id(target.workflow_id, target.index, tick)
        start_key = cron_start_key(target.index, tick)
        fires.append(CronFire(target, tick, value, execution_id, start_key))
    return fires, problems


def next_wake(targets: Iterable[CronTarget], now: float) -> float | None:
    """When the earliest trigger ticks next after ``now`` (None: never)."""
    ticks = [t for target in targets if (t := next_tick(target.schedule, now)) is not None]
    return min(ticks, default=None)
