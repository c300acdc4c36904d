"""The orchestrator's timer loop is woken by a new timer only when it is due before the
loop would look again by itself (one store round trip less per batch otherwise). The
timers themselves were stored by the commit that decided them: carrying out a batch's
commands writes none."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from spane.bus.memory import MemoryBus
from spane.orchestrator.outbox import Outbox
from spane.orchestrator.service import OrchestratorService
from spane.schemas.messages import TimerFired
from spane.schemas.state import Timer, TimerKind
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore

NOW = 1_000.0


def service() -> OrchestratorService:
    return OrchestratorService(
        MemoryBus(), MemoryStateStore(), MemoryDefinitionStore(), clock=lambda: NOW
    )


def outbox(fire_at: float) -> Outbox:
    box = Outbox()
    timer = Timer(id="t", execution_id="e", kind=TimerKind.DELAY, node_id="n", fire_at=fire_at)
    box.timers[timer.id] = timer
    return box


async def committed(orchestrator: OrchestratorService, fire_at: float) -> Outbox:
    """A batch's outbox with its timer, stored as the commit that decided it stores it."""
    box = outbox(fire_at)
    await orchestrator.state.update_timers(box.scheduled, [])
    return box


@pytest.mark.parametrize(
    ("wake_at", "fire_at", "woken"),
    [
        (NOW + 10, NOW + 1, True),  # due before the loop looks again
        (NOW + 10, NOW + 20, False),  # the loop will see it in time by itself
        (float("inf"), NOW + 20, True),  # the loop is awake: it may be past its look
    ],
)
async def test_a_scheduled_timer_wakes_the_loop_only_when_needed(
    wake_at: float, fire_at: float, woken: bool
) -> None:
    orchestrator = service()
    orchestrator.timers.wake_at = wake_at

    await orchestrator._execute(await committed(orchestrator, fire_at))

    assert orchestrator.timers.changed.is_set() is woken


async def test_carrying_out_a_batch_writes_no_timer() -> None:
    orchestrator = service()
    orchestrator.timers.wake_at = float("inf")
    await orchestrator._execute(outbox(NOW + 1))
    assert orchestrator.timers.changed.is_set()  # told of it...
    assert await orchestrator.state.next_timer_at() is None  # ...but the commit stores it


async def test_a_delay_fires_on_time_while_the_loop_sleeps() -> None:
    """End to end on the loop itself: it sleeps (nothing due), a timer is scheduled
    before its next look, and the loop claims it without waiting out its poll."""
    orchestrator = service()
    fired: list[str] = []

    async def publish(messages: Sequence[TimerFired]) -> None:
        fired.extend(message.timer.id for message in messages)

    orchestrator.timers.bus.publish_inbox = publish  # type: ignore[assignment,method-assign]
    task = asyncio.ensure_future(orchestrator.timers.fire_due())  # nothing due: it sleeps
    for _ in range(10):
        await asyncio.sleep(0)
    assert orchestrator.timers.wake_at == NOW + 0.5
    await orchestrator._execute(await committed(orchestrator, NOW))  # due now: wakes it
    await asyncio.wait_for(task, 1.0)
    await orchestrator.timers.fire_due()
    assert fired == ["t"]
