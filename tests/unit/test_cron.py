"""Cron schedules (spane.core.cron) and their validation: pure, table-driven."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from spane.bus.base import Bus
from spane.compiler import compile_plan
from spane.compiler.validation import validate
from spane.core.cron import (
    CronTarget,
    Schedule,
    cron_execution_id,
    cron_targets,
    due_fires,
    due_tick,
    latest_tick,
    next_tick,
    next_wake,
)
from spane.orchestrator.cron import CronLoop
from spane.orchestrator.plan_cache import PlanCache
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import InboxMessage, StartExecution
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def at(text: str, zone: str = PARIS) -> float:
    """A wall-clock time in ``zone`` (first occurrence in a repeated hour) as Unix seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(f"{text}+00:00").timestamp()


def local(tick: float | None, zone: str = PARIS) -> str | None:
    if tick is None:
        return None
    return datetime.fromtimestamp(tick, ZoneInfo(zone)).isoformat()


def ticks(schedule: Schedule, start: float, end: float) -> list[str]:
    """Every tick in (start, end], as local ISO times."""
    found: list[str] = []
    cursor = start
    while (tick := next_tick(schedule, cursor)) is not None and tick <= end:
        found.append(str(local(tick, schedule.timezone)))
        cursor = tick
    return found


# ------------------------------------------------------------------ next tick
NEXT_CASES = [
    # (expression, zone, after (UTC), expected next tick (local ISO))
    ("*/5 * * * *", "UTC", "2025-01-01T10:02:30", "2025-01-01T10:05:00+00:00"),
    ("*/5 * * * *", "UTC", "2025-01-01T10:05:00", "2025-01-01T10:10:00+00:00"),
    ("0 9 * * 1-5", PARIS, "2025-01-03T09:00:00", "2025-01-06T09:00:00+01:00"),  # Fri -> Mon
    ("0 0 1 * *", PARIS, "2025-01-31T23:30:00", "2025-03-01T00:00:00+01:00"),
    ("30 * * * * *", "UTC", "2025-01-01T10:00:00", "2025-01-01T10:00:30+00:00"),  # seconds
    ("0 12 * * *", "Asia/Kolkata", "2025-01-01T00:00:00", "2025-01-01T12:00:00+05:30"),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), NEXT_CASES)
def test_next_tick(expression: str, zone: str, after: str, expected: str) -> None:
    schedule = Schedule.parse(expression, zone)
    assert local(next_tick(schedule, utc(after)), zone) == expected


# ---------------------------------------------------- daylight saving time days
DST_CASES = [
    # Europe/Paris springs forward on 2025-03-30 at 02:00 -> 03:00.
    ("30 2 * * *", PARIS, "2025-03-30", ["2025-03-30T03:00:00+02:00"]),  # gap: runs at 03:00
    ("0 3 * * *", PARIS, "2025-03-30", ["2025-03-30T03:00:00+02:00"]),
    (
        "0 * * * *",
        PARIS,
        "2025-03-30",
        [f"2025-03-30T0{h}:00:00+01:00" for h in (0, 1)]
        + [f"2025-03-30T{h:02d}:00:00+02:00" for h in range(3, 24)],
    ),  # 23 hourly ticks: the day has 23 hours
    # Europe/Paris falls back on 2025-10-26 at 03:00 CEST -> 02:00 CET.
    ("30 2 * * *", PARIS, "2025-10-26", ["2025-10-26T02:30:00+02:00"]),  # once, first one
    (
        "*/30 2 * * *",
        PARIS,
        "2025-10-26",
        [
            "2025-10-26T02:00:00+02:00",
            "2025-10-26T02:30:00+02:00",
            "2025-10-26T02:00:00+01:00",
            "2025-10-26T02:30:00+01:00",
        ],
    ),  # a wildcard minute is an interval job: every real instant of the repeated hour
    (
        "*/30 * * * *",
        PARIS,
        "2025-10-26",
        None,  # checked by count below: every real half hour, 50 of them
    ),
    # New York: 2025-03-09 02:00 EST -> 03:00 EDT; 2025-11-02 02:00 EDT -> 01:00 EST.
    ("30 2 * * *", NEW_YORK, "2025-03-09", ["2025-03-09T03:00:00-04:00"]),
    ("30 1 * * *", NEW_YORK, "2025-11-02", ["2025-11-02T01:30:00-04:00"]),
]


@pytest.mark.parametrize(("expression", "zone", "day", "expected"), DST_CASES)
def test_ticks_on_dst_days(
    expression: str, zone: str, day: str, expected: list[str] | None
) -> None:
    schedule = Schedule.parse(expression, zone)
    start = at(f"{day}T00:00:00", zone) - 1
    end = at(f"{day}T23:59:59", zone)
    found = ticks(schedule, start, end)
    if expected is None:
        assert len(found) == 50  # 25 hours x 2
        assert len(set(found)) == 50
    else:
        assert found == expected


def test_fall_back_interval_ticks_are_distinct_instants() -> None:
    schedule = Schedule.parse("0 * * * *", PARIS)
    found = ticks(schedule, at("2025-10-26T01:30:00"), at("2025-10-26T03:30:00"))
    assert found == [
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T02:00:00+01:00",
        "2025-10-26T03:00:00+01:00",
    ]


# ------------------------------------------------------- latest and due ticks
@pytest.mark.parametrize(
    ("expression", "day"),
    [
        ("30 2 * * *", "2025-10-26"),
        ("15 1-3 * * *", "2025-10-26"),
        ("*/30 * * * *", "2025-10-26"),
        ("30 2 * * *", "2025-03-30"),
        ("0 * * * *", "2025-03-30"),
        ("*/7 2 * * *", "2025-10-26"),
    ],
)
def test_latest_tick_agrees_with_forward_ticks(expression: str, day: str) -> None:
    """Every minute of a DST day (and hours around it): the latest tick is the
    last one the forward schedule produced (cronsim's reverse iteration alone is not)."""
    schedule = Schedule.parse(expression, PARIS)
    start = at(f"{day}T00:00:00") - 6 * 3600
    end = start + 36 * 3600
    forward: list[float] = []
    cursor = start - 86400
    while (tick := next_tick(schedule, cursor)) is not None and tick <= end:
        forward.append(tick)
        cursor = tick
    for minute in range(int(start), int(end), 60):
        for now in (minute, minute + 30):
            expected = max(t for t in forward if t <= now)
            assert latest_tick(schedule, now) == expected, local(now)


DUE_CASES = [
    # (expression, zone, last fired, now, expected tick or None)
    ("*/5 * * * *", "UTC", "2025-01-01T10:00:00", "2025-01-01T10:04:59", None),
    ("*/5 * * * *", "UTC", "2025-01-01T10:00:00", "2025-01-01T10:05:00", "2025-01-01T10:05:00"),
    # down for 3 hours: only the latest missed tick fires
    ("*/5 * * * *", "UTC", "2025-01-01T10:00:00", "2025-01-01T13:02:00", "2025-01-01T13:00:00"),
    ("0 0 * * *", "UTC", "2025-01-01T00:00:00", "2025-01-09T12:00:00", "2025-01-09T00:00:00"),
    # already fired
    ("*/5 * * * *", "UTC", "2025-01-01T10:05:00", "2025-01-01T10:09:00", None),
    # spring forward: 02:30 Paris runs at 03:00 CEST = 01:00 UTC
    ("30 2 * * *", PARIS, "2025-03-29T01:30:00", "2025-03-30T01:00:00", "2025-03-30T01:00:00"),
    ("30 2 * * *", PARIS, "2025-03-29T01:30:00", "2025-03-30T00:59:59", None),
    # fall back: 02:30 Paris fires at 02:30 CEST = 00:30 UTC, not again at 01:30 UTC
    ("30 2 * * *", PARIS, "2025-10-25T00:30:00", "2025-10-26T00:30:00", "2025-10-26T00:30:00"),
    ("30 2 * * *", PARIS, "2025-10-26T00:30:00", "2025-10-26T01:45:00", None),
]


@pytest.mark.parametrize(("expression", "zone", "last", "now", "expected"), DUE_CASES)
def test_due_tick(expression: str, zone: str, last: str, now: str, expected: str | None) -> None:
    schedule = Schedule.parse(expression, zone)
    due = due_tick(schedule, utc(last), utc(now))
    assert due == (utc(expected) if expected else None)


@pytest.mark.parametrize(
    ("expression", "zone", "reason"),
    [
        ("61 * * * *", "UTC", "Bad minute"),
        ("* * *", "UTC", "5 fields"),
        ("*/5 * * * *", "Mars/Olympus", "unknown time zone"),
        ("*/5 * * * *", "../etc/passwd", "unknown time zone"),
    ],
)
def test_parse_refuses(expression: str, zone: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Schedule.parse(expression, zone)


# ------------------------------------------------------------ targets and fires
def _targets(triggers: list[dict[str, object]], since: float = 0.0) -> list[CronTarget]:
    spec = spec_from_data(
        {"id": "nightly", "triggers": triggers, "nodes": [{"id": "a", "function": "t.f"}]}
    )
    return cron_targets([(compile_plan(spec), since)])


def test_due_fires_renders_input_and_derives_ids() -> None:
    targets = _targets(
        [
            {"event": "x.y"},
            {"cron": "0 6 * * *", "timezone": PARIS, "input": {"at": "${ event.time }", "k": 1}},
        ]
    )
    assert [t.index for t in targets] == [1]
    now = at("2025-06-01T06:00:10")
    fires, problems = due_fires(targets, {}, now)
    assert problems == []
    (fire,) = fires
    assert fire.tick == at("2025-06-01T06:00:00")
    assert fire.input == {"at": "2025-06-01T06:00:00+02:00", "k": 1}
    assert fire.execution_id == cron_execution_id("nightly", 1, fire.tick)
    assert fire.start_key == f"cron:1:{int(fire.tick)}"
    # the cursor at that tick: nothing more is due
    assert due_fires(targets, {"nightly:1": fire.tick}, now + 3600) == ([], [])
    assert next_wake(targets, now) == at("2025-06-02T06:00:00")


def test_ticks_before_registration_do_not_fire() -> None:
    targets = _targets([{"cron": "0 6 * * *"}], since=utc("2025-06-01T07:00:00"))
    assert due_fires(targets, {}, utc("2025-06-01T08:00:00")) == ([], [])
    (fire,), _ = due_fires(targets, {}, utc("2025-06-02T06:00:01"))
    assert fire.tick == utc("2025-06-02T06:00:00")
    assert fire.input is None


def test_execution_ids_differ_per_tick_and_trigger() -> None:
    ids = {cron_execution_id("w", i, t) for i in (0, 1) for t in (60.0, 120.0)}
    assert len(ids) == 4
    assert cron_execution_id("w", 0, 60.0) == cron_execution_id("w", 0, 60.9)


# ------------------------------------------------------------------- validation
def test_invalid_cron_and_zone_are_reported_with_other_problems() -> None:
    spec = spec_from_data(
        {
            "id": "bad",
            "triggers": [
                {"cron": "61 * * * *", "timezone": "Nowhere/City"},
                {"cron": "*/5 * * *"},
                {"webhook": {"path": "orders"}},
                {"webhook": {"path": "orders"}},
            ],
            "nodes": [{"id": "a", "function": "t.f", "after": ["missing"]}],
        }
    )
    locations = [problem.location for problem in validate(spec)]
    assert locations == [
        "nodes[0].after[0]",
        "triggers[0].cron",
        "triggers[0].timezone",
        "triggers[1].cron",
        "triggers[3].webhook.path",
    ]


def test_valid_cron_triggers_have_no_problems() -> None:
    spec = spec_from_data(
        {
            "id": "ok",
            "triggers": [
                {"cron": "*/5 * * * *", "timezone": PARIS, "input": {"t": "${ event.time }"}},
                {"cron": "0 0 L * *"},
                {"cron": "*/10 * * * * *", "timezone": "UTC"},
            ],
            "nodes": [{"id": "a", "function": "t.f"}],
        }
    )
    assert validate(spec) == []


# --------------------------------------------------------- the loop (injected clock)
class _Recorder:
    """The one Bus method the cron loop uses."""

    def __init__(self) -> None:
        self.published: list[InboxMessage] = []

    async def publish_inbox(self, messages: Sequence[InboxMessage]) -> None:
        self.published.extend(messages)


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _loop(
    definition: dict[str, Any], registered_at: float
) -> tuple[CronLoop, _Recorder, _Clock, MemoryStateStore]:
    clock = _Clock(registered_at)
    definitions = MemoryDefinitionStore()
    spec = spec_from_data(definition)
    await definitions.register(spec, compile_plan(spec).checksum, registered_at)
    state = MemoryStateStore(clock)
    recorder = _Recorder()
    plans = PlanCache(definitions, clock=clock)
    loop = CronLoop(cast(Bus, recorder), state, definitions, plans, clock, max_sleep=3600.0)
    return loop, recorder, clock, state


EVERY_5 = {
    "id": "every5",
    "triggers": [{"cron": "*/5 * * * *", "timezone": PARIS, "input": {"at": "${ event.time }"}}],
    "nodes": [{"id": "a", "type": "noop"}],
}


def _starts(recorder: _Recorder) -> list[StartExecution]:
    return [m for m in recorder.published if isinstance(m, StartExecution)]


async def test_loop_fires_each_tick_once_and_sleeps_until_the_next() -> None:
    loop, recorder, clock, _ = await _loop(EVERY_5, at("2025-06-01T10:02:00"))
    assert await loop.fire_due() == pytest.approx(180.0)  # until 10:05
    assert recorder.published == []
    clock.now = at("2025-06-01T10:05:00")
    assert await loop.fire_due() == pytest.approx(300.0)
    (start,) = _starts(recorder)
    assert start.workflow_id == "every5"
    assert start.version == 1
    assert start.input == {"at": "2025-06-01T10:05:00+02:00"}
    assert start.execution_id == cron_execution_id("every5", 0, clock.now)
    assert start.idempotency_key == f"cron:0:{int(clock.now)}"
    clock.now += 10  # same tick: nothing new
    await loop.fire_due()
    assert len(_starts(recorder)) == 1


async def test_loop_fires_one_start_after_downtime() -> None:
    loop, recorder, clock, state = await _loop(EVERY_5, at("2025-06-01T10:02:00"))
    clock.now = at("2025-06-01T10:05:01")
    await loop.fire_due()
    clock.now = at("2025-06-01T13:17:00")  # down for three hours: 38 ticks missed
    await loop.fire_due()
    starts = _starts(recorder)
    assert [s.input for s in starts] == [
        {"at": "2025-06-01T10:05:00+02:00"},
        {"at": "2025-06-01T13:15:00+02:00"},
    ]
    assert await state.cron_cursors(["every5:0"]) == {"every5:0": at("2025-06-01T13:15:00")}


async def test_a_new_loop_continues_from_the_stored_cursor() -> None:
    """A restarted replica (a fresh loop over the same store) does not fire again."""
    loop, recorder, clock, state = await _loop(EVERY_5, at("2025-06-01T10:02:00"))
    clock.now = at("2025-06-01T10:05:30")
    await loop.fire_due()
    again = CronLoop(cast(Bus, recorder), state, loop.definitions, loop.plans, clock)
    await again.fire_due()
    assert len(_starts(recorder)) == 1


async def test_loop_without_cron_triggers_sleeps_the_maximum() -> None:
    definition = {"id": "plain", "nodes": [{"id": "a", "type": "noop"}]}
    loop, recorder, _, _ = await _loop(definition, 1000.0)
    assert await loop.fire_due() == loop.max_sleep
    assert recorder.published == []


async def test_loop_run_sleeps_with_the_injected_sleep() -> None:
    loop, recorder, clock, _ = await _loop(EVERY_5, at("2025-06-01T10:04:59"))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds
        if len(waits) == 3:
            raise asyncio.CancelledError

    loop.sleep = sleep
    with pytest.raises(asyncio.CancelledError):
        await loop.run()
    assert waits == [pytest.approx(1.0), pytest.approx(300.0), pytest.approx(300.0)]
    assert len(_starts(recorder)) == 2
