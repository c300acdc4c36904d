"""In-process bus for the embedded mode: asyncio queues, no serialisation.

Semantics follow the RabbitMQ adapter where users can observe them: micro-batched
consumers, redelivery of a batch whose handler raised, priority ordering on task
queues, topic-pattern event subscriptions, RPC replies for commands. Tasks for a type
nobody consumes yet wait in their queue, as they do in RabbitMQ's durable queue.

Values are not serialised, so nothing here fails to decode; a trigger body JSON cannot
carry faithfully (see :mod:`spane.bus.codec`: non-finite numbers, integers past 64 bits,
nesting past :data:`~spane.bus.codec.MAX_VALUE_DEPTH`, over ``max_value_bytes``) is
refused by ``publish_trigger`` with :class:`~spane.errors.InvalidMessageError`, as on
RabbitMQ. Every message gets a unique id (a trigger is started once per publication
unless it carries the ``spane-idempotency-key`` header).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from spane.bus.base import (
    BatchHandler,
    CancelHandler,
    Delivery,
    EventHandler,
    QueueStats,
    Reply,
    TriggerEvent,
)
from spane.bus.codec import (
    JSON_CONTENT_TYPE,
    MAX_VALUE_DEPTH,
    decode_inbox,
    decode_task,
    decode_trigger_body,
    encode_inbox,
    encode_task,
    json_value_problem,
)
from spane.bus.dead_letters import DeadLetter, json_headers
from spane.bus.topology import Topology, topic_matches
from spane.errors import CommandRejectedError, InvalidMessageError
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES, encoded_size
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import InboxMessage, TaskHeartbeat, TaskMessage, TaskResult

log = logging.getLogger("spane.bus.memory")
T = TypeVar("T")
REDELIVERY_DELAY = 0.05
DELIVERY_LIMIT = 20
_NODE_PATTERN_HEADS = frozenset({"node", "*", "#"})
"""First words of a topic pattern that can match a node-level routing key."""


class _Queue(Generic[T]):
    """A priority queue of deliveries (higher priority first, FIFO within one)."""

    def __init__(self) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, Delivery[T]]] = asyncio.PriorityQueue()
        self._counter = itertools.count()
        self.consumers = 0

    def put(self, delivery: Delivery[T], priority: int = 0) -> None:
        self._queue.put_nowait((-priority, next(self._counter), delivery))

    async def get_batch(self, limit: int) -> list[Delivery[T]]:
        first = await self._queue.get()
        batch = [first[2]]
        if first[2].redelivered:
            return batch  # alone: a poison message must not drag others to the limit
        while len(batch) < limit and not self._queue.empty():
            batch.append(self._queue.get_nowait()[2])
        return batch

    def qsize(self) -> int:
        return self._queue.qsize()


class _Consumer(Generic[T]):
    def __init__(
        self,
        queue: _Queue[T],
        handler: BatchHandler[T],
        prefetch: int,
        name: str,
        dead_letter: Callable[[Delivery[T], str], None],
    ):
        self._queue = queue
        self._handler = handler
        self._prefetch = max(prefetch, 1)
        self._dead_letter = dead_letter
        self._failures: dict[int, int] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        queue.consumers += 1
        self._task = asyncio.create_task(self._run(), name=f"spane-consume-{name}")

    async def _run(self) -> None:
        while True:
            batch = await self._queue.get_batch(self._prefetch)
            self._idle.clear()
            try:
                await self._handler(batch)
            except asyncio.CancelledError:
                self._requeue(batch)
                raise
            except Exception as exc:
                log.exception("handler failed; %d message(s) will be redelivered", len(batch))
                await asyncio.sleep(REDELIVERY_DELAY)
                self._retry_or_dead_letter(batch, f"{type(exc).__name__}: {exc}")
            else:
                for delivery in batch:
                    self._failures.pop(id(delivery), None)
            finally:
                self._idle.set()

    def _retry_or_dead_letter(self, batch: Sequence[Delivery[T]], reason: str) -> None:
        for delivery in batch:
            count = self._failures.get(id(delivery), 0) + 1
            if count >= DELIVERY_LIMIT:
                self._failures.pop(id(delivery), None)
                self._dead_letter(delivery, f"delivery limit ({DELIVERY_LIMIT}) reached: {reason}")
                continue
            self._failures[id(delivery)] = count
            delivery.redelivered = True
            self._queue.put(delivery)

    def _requeue(self, batch: Sequence[Delivery[T]]) -> None:
        for delivery in batch:
            delivery.redelivered = True
            self._queue.put(delivery)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop consuming; a handler call in flight finishes first (up to ``grace``)."""
        self._queue.consumers -= 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class _Callback:
    def __init__(self, registry: list[Any], entry: Any) -> None:
        self._registry = registry
        self._entry = entry
        registry.append(entry)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._registry.remove(self._entry)


class MemoryBus:
    """:class:`~spane.bus.base.Bus` within one process."""

    def __init__(self, *, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> None:
        self.max_value_bytes = max_value_bytes
        self._inbox: _Queue[InboxMessage] = _Queue()
        self._triggers: _Queue[TriggerEvent] = _Queue()
        self._tasks: dict[str, _Queue[TaskMessage]] = {}
        self._event_handlers: list[tuple[str, EventHandler]] = []
        self._cancel_handlers: list[CancelHandler] = []
        self._token = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        self.dead_letters: list[tuple[Any, str]] = []
        """(message, reason) of messages whose handler kept failing."""
        self._dead_queue: _Queue[DeadLetter] = _Queue()
        self.topology = Topology()
        """The names dead letters record as their origin (the default namespace)."""

    def _dead_letter(self, delivery: Delivery[Any], reason: str) -> None:
        log.error("dead-lettering %s: %s", type(delivery.message).__name__, reason)
        self.dead_letters.append((delivery.message, reason))
        entry = _dead_letter_entry(self.topology, delivery, reason, time.time())
        self._dead_queue.put(Delivery(entry, entry.id))

    def _lost_dead_letter(self, delivery: Delivery[DeadLetter], reason: str) -> None:
        log.error("dropping dead letter %s: it could not be kept: %s", delivery.message_id, reason)

    async def consume_dead_letters(
        self, handler: BatchHandler[DeadLetter], *, prefetch: int
    ) -> _Consumer[DeadLetter]:
        """Every message dead-lettered by this bus, as :class:`DeadLetter` entries."""
        return _Consumer(
            self._dead_queue, handler, prefetch, "dead-letters", self._lost_dead_letter
        )

    async def redrive(self, entry: DeadLetter) -> None:
        """Put a dead letter back in the queue it was first sent to."""
        top = self.topology
        message_id = entry.message_id or self._message_id()  # the id it had
        try:
            if entry.exchange == top.orchestrator_exchange:
                self._inbox.put(Delivery(decode_inbox(entry.body), message_id))
            elif entry.exchange == top.triggers_exchange:
                body = decode_trigger_body(entry.body, max_bytes=self.max_value_bytes)
                event = TriggerEvent(entry.routing_key, body)
                self._triggers.put(Delivery(event, message_id, headers=entry.redrive_headers()))
            elif entry.exchange == top.tasks_exchange:
                task = decode_task(entry.body)
                self._task_queue(entry.routing_key or task.pool_name).put(
                    Delivery(task, task.task_id), task.priority
                )
            else:
                raise CommandRejectedError(
                    f"dead letter {entry.id}: unknown exchange {entry.exchange!r}"
                )
        except InvalidMessageError as exc:
            raise CommandRejectedError(f"dead letter {entry.id}: {exc}") from exc

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _message_id(self) -> str:
        """Unique per message of this bus: a random token and a counter (no system call
        per message, as ``uuid4`` makes)."""
        return f"{self._token}-{next(self._counter)}"

    def _task_queue(self, pool: str) -> _Queue[TaskMessage]:
        return self._tasks.setdefault(pool, _Queue())

    async def publish_tasks(self, tasks: Sequence[TaskMessage]) -> None:
        for task in tasks:
            self._task_queue(task.pool_name).put(Delivery(task, task.task_id), task.priority)

    async def publish_inbox(self, messages: Sequence[InboxMessage]) -> None:
        for message in messages:
            self._inbox.put(Delivery(message, self._message_id()))

    async def publish_results(self, messages: Sequence[TaskResult | TaskHeartbeat]) -> None:
        await self.publish_inbox(messages)

    async def request(self, message: InboxMessage, timeout: float = 30.0) -> Reply:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Reply] = loop.create_future()

        async def reply(value: Reply) -> None:
            if not answer.done():
                answer.set_result(value)

        self._inbox.put(Delivery(message, self._message_id(), reply=reply), priority=1)
        async with asyncio.timeout(timeout):
            return await answer

    def node_events_wanted(self) -> bool:
        """Is any subscription's pattern able to match ``node.<workflow>.<node>.<status>``?"""
        return any(
            pattern.split(".", 1)[0] in _NODE_PATTERN_HEADS for pattern, _ in self._event_handlers
        )

    async def publish_events(self, events: Sequence[tuple[str, LifecycleEvent]]) -> None:
        for routing_key, event in events:
            for pattern, handler in list(self._event_handlers):
                if topic_matches(pattern, routing_key):
                    try:
                        await handler(routing_key, event)
                    except Exception:
                        log.exception("event subscriber failed on %s", routing_key)

    async def broadcast_cancel(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            for handler in list(self._cancel_handlers):
                await handler(task_id)

    async def publish_trigger(
        self, routing_key: str, body: Any, *, headers: dict[str, Any] | None = None
    ) -> None:
        problem = json_value_problem(body, max_depth=MAX_VALUE_DEPTH)
        if problem is None and (size := encoded_size(body)) > self.max_value_bytes:
            problem = f"body is {size} bytes, over the limit of {self.max_value_bytes} bytes"
        if problem is not None:
            raise InvalidMessageError(f"invalid trigger: {problem}")
        self._triggers.put(
            Delivery(
                TriggerEvent(routing_key, body), self._message_id(), headers=dict(headers or {})
            )
        )

    async def consume_triggers(
        self, handler: BatchHandler[TriggerEvent], *, prefetch: int
    ) -> _Consumer[TriggerEvent]:
        return _Consumer(self._triggers, handler, prefetch, "triggers", self._dead_letter)

    async def consume_inbox(
        self, handler: BatchHandler[InboxMessage], *, prefetch: int
    ) -> _Consumer[InboxMessage]:
        return _Consumer(self._inbox, handler, prefetch, "inbox", self._dead_letter)

    async def consume_tasks(
        self, pool: str, handler: BatchHandler[TaskMessage], *, prefetch: int
    ) -> _Consumer[TaskMessage]:
        return _Consumer(self._task_queue(pool), handler, prefetch, pool, self._dead_letter)

    async def pool_stats(self, pools: Sequence[str]) -> dict[str, QueueStats]:
        stats: dict[str, QueueStats] = {}
        for pool in pools:
            queue = self._tasks.get(pool)
            stats[pool] = QueueStats(queue.qsize(), queue.consumers) if queue else QueueStats(0, 0)
        return stats

    async def subscribe_events(self, pattern: str, handler: EventHandler) -> _Callback:
        return _Callback(self._event_handlers, (pattern, handler))

    async def subscribe_cancellations(self, handler: CancelHandler) -> _Callback:
        return _Callback(self._cancel_handlers, handler)

    def pending(self) -> dict[str, int]:
        """Messages waiting per queue (for tests and the status view)."""
        sizes = {"inbox": self._inbox.qsize()}
        sizes.update({f"tasks.{name}": q.qsize() for name, q in self._tasks.items()})
        return sizes


def _dead_letter_entry(
    top: Topology, delivery: Delivery[Any], reason: str, now: float
) -> DeadLetter:
    """What the memory bus keeps of a dead-lettered delivery: the message encoded as it
    would travel on RabbitMQ, with its origin."""
    message = delivery.message
    if isinstance(message, TaskMessage):
        exchange, key, queue, body = (
            top.tasks_exchange,
            message.pool_name,
            top.task_queue(message.pool_name),
            encode_task(message),
        )
    elif isinstance(message, TriggerEvent):
        exchange, key, queue = top.triggers_exchange, message.routing_key, top.triggers_queue
        body = json.dumps(message.body).encode()
    else:
        exchange, key, queue = top.orchestrator_exchange, "", top.orchestrator_queue
        body = encode_inbox(message)
    return DeadLetter(
        id=uuid.uuid4().hex,
        exchange=exchange,
        routing_key=key,
        queue=queue,
        reason=reason,
        dead_at=now,
        body=body,
        headers=json_headers(delivery.headers),
        content_type=JSON_CONTENT_TYPE,
        message_id=delivery.message_id,
    )
