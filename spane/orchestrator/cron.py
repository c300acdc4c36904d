"""The cron loop: starts the executions cron triggers ask for; any number of replicas.

Every replica runs one. It reads the cron triggers of every workflow's latest version
(re-read every ``refresh`` seconds), and at each wake-up fires, per trigger, the latest
tick after the trigger's cursor (the last tick fired, kept in the state store; a new
trigger starts from its version's registration): one ``StartExecution`` however many
ticks a pause skipped (:func:`spane.core.cron.due_fires`). The start is idempotent — its
execution id and start key derive from (workflow, trigger, tick) — so replicas firing
the same tick start one execution. The cursor moves only after the start is published:
a crash in between fires that tick again, which starts nothing new. Then the loop
sleeps until the next tick (at most ``max_sleep``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from spane.bus.base import Bus
from spane.core.cron import CronTarget, cron_targets, due_fires, next_wake
from spane.orchestrator.plan_cache import PlanCache
from spane.schemas.messages import InboxMessage, StartExecution
from spane.schemas.workflow import CronTrigger
from spane.state.base import DefinitionStore, StateStore

log = logging.getLogger("spane.orchestrator")

CRON_REFRESH = 5.0
"""Seconds between re-reads of the definitions (a new cron trigger is seen within it)."""
CRON_MAX_SLEEP = 5.0
CRON_RETRY = 1.0

Sleep = Callable[[float], Awaitable[None]]


class CronLoop:
    def __init__(
        self,
        bus: Bus,
        state: StateStore,
        definitions: DefinitionStore,
        plans: PlanCache,
        clock: Callable[[], float],
        *,
        sleep: Sleep = asyncio.sleep,
        refresh: float = CRON_REFRESH,
        max_sleep: float = CRON_MAX_SLEEP,
    ) -> None:
        self.bus = bus
        self.state = state
        self.definitions = definitions
        self.plans = plans
        self.clock = clock
        self.sleep = sleep
        self.refresh = refresh
        self.max_sleep = max_sleep
        self._targets: list[CronTarget] = []
        self._targets_at = float("-inf")

    async def run(self) -> None:
        while True:
            try:
                wait = await self.fire_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cron loop failed; retrying")
                wait = CRON_RETRY
            await self.sleep(wait)

    def invalidate(self) -> None:
        """Re-read the definitions at the next wake-up (after a registration)."""
        self._targets_at = float("-inf")

    async def targets(self) -> list[CronTarget]:
        """The cron triggers of every workflow's latest version (re-read every ``refresh``)."""
        if self.clock() - self._targets_at >= self.refresh:
            records = await self.definitions.list_workflows()
            plans = [
                (await self.plans.get(r.workflow_id, r.version), r.created_at)
                for r in records
                if any(isinstance(t, CronTrigger) for t in r.spec.triggers)
            ]
            self._targets = cron_targets(plans)
            self._targets_at = self.clock()
        return self._targets

    async def fire_due(self) -> float:
        """Publish the starts due now and record them; returns the seconds to sleep."""
        targets = await self.targets()
        if not targets:
            return self.max_sleep
        now = self.clock()
        cursors = await self.state.cron_cursors([target.key for target in targets])
        fires, problems = due_fires(targets, cursors, now)
        for problem in problems:
            log.warning(
                "cron trigger %d of workflow %s failed at %s: %s",
                problem.target.index,
                problem.target.workflow_id,
                problem.target.schedule.local_time(problem.tick),
                problem.reason,
            )
        if fires:
            starts: list[InboxMessage] = [
                StartExecution(
                    execution_id=fire.execution_id,
                    workflow_id=fire.target.workflow_id,
                    version=fire.target.version,
                    input=fire.input,
                    idempotency_key=fire.start_key,
                )
                for fire in fires
            ]
            await self.bus.publish_inbox(starts)
        done = {fire.target.key: fire.tick for fire in fires}
        done.update((problem.target.key, problem.tick) for problem in problems)
        if done:
            await self.state.advance_cron_cursors(done)
        wait = self.max_sleep
        next_at = next_wake(targets, now)
        if next_at is not None:
            wait = min(wait, max(next_at - self.clock(), 0.0))
        return wait


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a loop's task and wait until it has stopped (None: nothing to do)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
