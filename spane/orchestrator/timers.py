"""The timer loop: moves due timers into the inbox; any number of replicas share them.

Timers are claimed atomically with a lease (a replica that dies mid-batch leaves them
to another after ``TIMER_LEASE``). Liveness timers are not delivered as events: the
loop reads the attempt's claim and carries out :func:`spane.core.liveness.liveness`.
The loop sleeps until the next timer is due (at most ``TIMER_POLL_INTERVAL``); a timer
scheduled earlier than that wakes it (:meth:`TimerLoop.scheduled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from spane import retrying
from spane.bus.base import Bus
from spane.core.ids import task_id
from spane.core.liveness import CheckAgain, Deliver, Lost, Settled, liveness
from spane.schemas.messages import InboxMessage, TimerFired
from spane.schemas.state import Timer, TimerKind
from spane.state.base import StateStore

if TYPE_CHECKING:
    from spane.observability.metrics import Metrics

log = logging.getLogger("spane.orchestrator")

TIMER_POLL_INTERVAL = 0.5
TIMER_BATCH = 512
TIMER_LEASE = 30.0


class TimerLoop:
    def __init__(
        self,
        bus: Bus,
        state: StateStore,
        clock: Callable[[], float],
        liveness_period: float,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.bus = bus
        self.metrics = metrics
        self.state = state
        self.clock = clock
        self.liveness_period = liveness_period
        self.changed = asyncio.Event()
        self.wake_at = float("inf")
        """When the loop wakes up by itself (inf while it is awake): a timer due earlier
        wakes it; later ones wait (one store round trip less per batch)."""

    def scheduled(self, timers: Sequence[Timer]) -> None:
        """Timers were just stored: wake the loop if one is due before its next look."""
        if timers and min(timer.fire_at for timer in timers) < self.wake_at:
            self.changed.set()

    async def run(self) -> None:
        """Fire due timers until cancelled; a failure (a server down) is logged and the
        loop goes on after ``TIMER_POLL_INTERVAL`` (:func:`spane.retrying.forever`)."""
        await retrying.forever(TIMER_POLL_INTERVAL, log, "timer loop")(self._fire_forever)

    async def _fire_forever(self) -> None:
        while True:
            await self.fire_due()

    async def fire_due(self) -> None:
        """Deliver what is due, or sleep until the next timer (or a wake-up)."""
        due = await self.state.claim_due_timers(self.clock(), TIMER_BATCH, TIMER_LEASE)
        if self.metrics is not None:
            self.metrics.record_timers_due(len(due))
        if due:
            messages: list[InboxMessage] = []
            for timer in due:
                if timer.kind is TimerKind.LIVENESS:
                    messages.extend(await self._check_liveness(timer))
                else:
                    messages.append(TimerFired(timer=timer))
            if messages:
                await self.bus.publish_inbox(messages)
            await self.state.ack_timers(due)
            return
        self.changed.clear()  # before looking: a timer scheduled after this wakes us
        next_at = await self.state.next_timer_at()
        wait = TIMER_POLL_INTERVAL
        if next_at is not None:
            wait = min(max(next_at - self.clock(), 0.0), TIMER_POLL_INTERVAL)
        self.wake_at = self.clock() + wait
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: it can swallow a cancel on 3.11
                    await self.changed.wait()
        finally:
            self.wake_at = float("inf")

    async def _check_liveness(self, timer: Timer) -> list[InboxMessage]:
        """Read what the liveness decision needs: the attempt's claim, and the node's
        state when the claim holds a result; carry out its verdict."""
        if timer.node_id is None:
            return []
        claim = await self.state.get_claim(
            task_id(timer.execution_id, timer.node_id, timer.attempt)
        )
        node = None
        if claim is not None and claim.result is not None:
            node = (await self.state.get_nodes(timer.execution_id)).get(timer.node_id)
        match liveness(timer, claim, node, self.clock(), self.liveness_period):
            case CheckAgain(timer=later):
                await self.state.update_timers([later], [])
                return []
            case Deliver(result=result):
                return [result]
            case Lost(message=lost):
                return [lost]
            case Settled():
                return []
