"""The orchestrator service: the adapter loop around the pure decision core.

For each micro-batch from the inbox: decode (done by the bus) -> load state -> decide
-> commit atomically (idempotent by event id) -> execute the commands (timers, tasks,
events, children) -> answer RPC callers; the bus acks the batch when this returns.
A second loop moves due timers into the inbox. Any number of replicas may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from spane.bus.base import Bus, Delivery, Subscription, TriggerEvent
from spane.core.admission import activations
from spane.core.options import CoreOptions
from spane.core.triggers import TriggerTarget, build_index, match_event
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
from spane.observability import tracing
from spane.orchestrator.apply import Outcome, Transitions
from spane.orchestrator.archive import Archiver
from spane.orchestrator.cron import CronLoop, cancel_task
from spane.orchestrator.dead_letters import DEAD_LETTER_PREFETCH, DeadLetterKeeper
from spane.orchestrator.outbox import Outbox
from spane.orchestrator.plan_cache import PlanCache
from spane.orchestrator.timers import TimerLoop
from spane.schemas.commands import (
    ExecutionFinished,
)
from spane.schemas.messages import (
    ExecutionMessage,
    InboxMessage,
    StartExecution,
)
from spane.schemas.state import (
    ExecutionStatus,
)
from spane.state.base import DefinitionStore, StateStore

if TYPE_CHECKING:
    from spane.observability.metrics import Metrics

log = logging.getLogger("spane.orchestrator")
T = TypeVar("T")

MAX_CONFLICT_RETRIES = 50
START_CONCURRENCY = 32
"""Starts one orchestrator works on at once within a batch (below the Redis pool); the
other messages of a batch share one load and one commit round trip."""
TRIGGER_INDEX_TTL = 2.0
IDEMPOTENCY_HEADER = "spane-idempotency-key"

FinishedHook = Callable[[ExecutionFinished], Awaitable[None]]


class OrchestratorService:
    """One orchestrator replica."""

    def __init__(
        self,
        bus: Bus,
        state: StateStore,
        definitions: DefinitionStore,
        *,
        plans: PlanCache | None = None,
        options: CoreOptions | None = None,
        prefetch: int = 128,
        clock: Callable[[], float] = time.time,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        on_finished: FinishedHook | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.bus = bus
        self.state = state
        self.definitions = definitions
        self.plans = plans or PlanCache(definitions)
        self.options = options or CoreOptions()
        self.prefetch = prefetch
        self.clock = clock
        self.max_value_bytes = max_value_bytes
        self.on_finished = on_finished
        self.metrics = metrics
        """Where this replica's metrics go (None: nowhere, at no cost)."""
        self._subscription: Subscription | None = None
        self._trigger_subscription: Subscription | None = None
        self.dead_letters = DeadLetterKeeper(definitions)
        self._dead_letter_subscription: Subscription | None = None
        self._trigger_index: list[TriggerTarget] = []
        self._trigger_index_at = float("-inf")
        self.timers = TimerLoop(bus, state, clock, self.options.liveness, metrics=metrics)
        self._timer_task: asyncio.Task[None] | None = None
        self.cron = CronLoop(bus, state, definitions, self.plans, clock)
        self._cron_task: asyncio.Task[None] | None = None
        self._start_slots = asyncio.Semaphore(START_CONCURRENCY)
        self.archiver = Archiver(state, definitions, clock)
        self._archiver: asyncio.Task[None] | None = None
        self.transitions = Transitions(
            state,
            self.plans,
            self.options,
            clock,
            max_value_bytes,
            node_events_wanted=getattr(bus, "node_events_wanted", None),  # older Bus classes
        )

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._subscription = await self.bus.consume_inbox(self.handle_batch, prefetch=self.prefetch)
        self._trigger_subscription = await self.bus.consume_triggers(
            self.handle_triggers, prefetch=self.prefetch
        )
        self._dead_letter_subscription = await self.bus.consume_dead_letters(
            self.dead_letters.handle, prefetch=DEAD_LETTER_PREFETCH
        )
        self._timer_task = asyncio.create_task(self.timers.run(), name="spane-timers")
        self._archiver = asyncio.create_task(self.archiver.run(), name="spane-archive")
        self._cron_task = asyncio.create_task(self.cron.run(), name="spane-cron")

    @property
    def consuming(self) -> bool:
        """Whether this replica consumes its inbox (started and not stopped)."""
        return self._subscription is not None

    async def stop(self) -> None:
        if self._dead_letter_subscription is not None:
            await self._dead_letter_subscription.stop()
            self._dead_letter_subscription = None
        if self._trigger_subscription is not None:
            await self._trigger_subscription.stop()
            self._trigger_subscription = None
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None
        await cancel_task(self._cron_task)
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
            self._timer_task = None
        if self._archiver is not None:
            await self.archiver.drain()
            self._archiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._archiver
            self._archiver = None

    # ------------------------------------------------------------- batches
    async def handle_batch(self, deliveries: Sequence[Delivery[InboxMessage]]) -> None:
        """One micro-batch: starts first (concurrently), then every execution's messages
        as a group (one load and one commit round trip for all groups), then all
        resulting commands, then the RPC answers."""
        with tracing.inbox_batch(deliveries):
            await self._handle_batch(deliveries)

    async def _handle_batch(self, deliveries: Sequence[Delivery[InboxMessage]]) -> None:
        began = time.perf_counter() if self.metrics is not None else 0.0
        outcomes: dict[int, Outcome] = {}
        starts = [
            (i, d.message)
            for i, d in enumerate(deliveries)
            if isinstance(d.message, StartExecution)
        ]
        started = await _concurrently([self._bounded(self.transitions.start(m)) for _, m in starts])
        for (index, _), outcome in zip(starts, started, strict=True):
            outcomes[index] = outcome
        groups: dict[str, list[tuple[int, Delivery[ExecutionMessage]]]] = {}
        for index, delivery in enumerate(deliveries):
            message = delivery.message
            if not isinstance(message, StartExecution):
                typed = cast(Delivery[ExecutionMessage], delivery)
                groups.setdefault(message.execution_id, []).append((index, typed))
        applied = await self.transitions.apply_groups(
            {execution_id: [d for _, d in items] for execution_id, items in groups.items()}
        )
        for execution_id, items in groups.items():
            for (index, _), outcome in zip(items, applied[execution_id], strict=True):
                outcomes[index] = outcome
        outbox = Outbox()
        for index in range(len(deliveries)):
            outbox.add(outcomes[index][0])
        await self._execute(outbox)
        for index, delivery in enumerate(deliveries):
            if delivery.reply is not None:
                await delivery.reply(outcomes[index][1])
        if self.metrics is not None:
            self.metrics.record_batch(len(deliveries), time.perf_counter() - began)

    async def _bounded(self, work: Awaitable[T]) -> T:
        """At most START_CONCURRENCY starts in flight (the Redis pool is finite)."""
        async with self._start_slots:
            return await work

    async def handle_triggers(self, deliveries: Sequence[Delivery[TriggerEvent]]) -> None:
        """Start the executions trigger events ask for (DESIGN §2 "Trigger events")."""
        targets = await self._triggers()
        outbox = Outbox()
        for delivery in deliveries:
            event = delivery.message
            matches, problems = match_event(
                targets, event.routing_key, event.body, delivery.message_id
            )
            for problem in problems:
                log.warning(
                    "trigger %d of workflow %s failed on %s: %s",
                    problem.target.index,
                    problem.target.workflow_id,
                    event.routing_key,
                    problem.reason,
                )
            key = delivery.headers.get(IDEMPOTENCY_HEADER)
            with tracing.trigger_received(delivery) as trace:  # the producer's trace goes on
                for match in matches:
                    start = StartExecution(
                        execution_id=match.execution_id,
                        workflow_id=match.target.workflow_id,
                        version=match.target.version,
                        input=match.input,
                        idempotency_key=str(key) if key else None,
                        **trace,
                    )
                    commands, reply = await self.transitions.start(start)
                    if not reply.get("ok"):
                        log.warning(
                            "trigger %s did not start %s: %s",
                            event.routing_key,
                            start.workflow_id,
                            reply.get("error"),
                        )
                    outbox.add(commands)
        await self._execute(outbox)

    async def _triggers(self) -> list[TriggerTarget]:
        """The event triggers of every workflow's latest version (refreshed every few s)."""
        if self.clock() - self._trigger_index_at >= TRIGGER_INDEX_TTL:
            records = await self.definitions.list_workflows()
            plans = [await self.plans.get(r.workflow_id, r.version) for r in records]
            self._trigger_index = build_index(plans)
            self._trigger_index_at = self.clock()
        return self._trigger_index

    def invalidate_triggers(self) -> None:
        """Rebuild the trigger index on the next event (after a registration)."""
        self._trigger_index_at = float("-inf")
        self.cron.invalidate()

    # ------------------------------------------------------------ commands
    async def _execute(self, outbox: Outbox) -> None:
        """Carry out a batch's commands: each kind of message in one publication
        (confirms awaited together). The timers were stored with the commit that
        decided them (atomically, no round trip of their own); the timer loop is only
        told of them, to wake early for one due soon. Measured on W1: publishing tasks
        and events as one publication lengthened a step (about 5.5-7 ms against 4.4-5.4)."""
        if outbox.scheduled:
            self.timers.scheduled(outbox.scheduled)
        if outbox.tasks:
            with tracing.dispatching(outbox.tasks) as tasks:  # a span per attempt, if tracing
                await self.bus.publish_tasks(tasks)
        if outbox.inbox:
            await self.bus.publish_inbox(outbox.inbox)
        if outbox.cancels:
            await self.state.cancel_tasks(outbox.cancels)  # durable: not started -> never
            await self.bus.broadcast_cancel(outbox.cancels)
        if outbox.events:
            await self.bus.publish_events(outbox.events)
        if self.metrics is not None:  # every count derives from the commands carried out
            self.metrics.record_outbox(outbox.tasks, outbox.events)
        for finished in outbox.finished:
            await self._release_slot(finished)
            self.archiver.add(finished.execution_id)
            if self.on_finished is not None:
                await self.on_finished(finished)

    async def _release_slot(self, finished: ExecutionFinished) -> None:
        """Hand a finished execution's ``max_executions`` slot to the next one queued."""
        if not finished.top_level:
            return
        plan = await self.plans.get(finished.workflow_id, finished.version or None)
        if not plan.max_executions:
            return
        workflow_id = finished.workflow_id
        await self.state.release_slot(workflow_id, finished.execution_id, plan.max_executions)
        holders: dict[str, ExecutionStatus | None] = {}
        for holder in await self.state.slot_holders(workflow_id):
            meta = await self.state.get_meta(holder)
            holders[holder] = meta.status if meta is not None else None
        pending: list[InboxMessage] = list(activations(holders))
        if pending:
            await self.bus.publish_inbox(pending)


async def _concurrently(work: Sequence[Awaitable[T]]) -> list[T]:
    """``asyncio.gather``, without its task when there is only one (a light load's
    batch holds one execution: no task, no extra turn of the event loop)."""
    if len(work) == 1:
        return [await work[0]]
    return list(await asyncio.gather(*work))
