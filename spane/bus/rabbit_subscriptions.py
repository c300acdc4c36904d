"""The consumers of a :class:`~spane.bus.rabbit.RabbitBus`: one channel each.

:class:`Consumers` opens a consumer's channel (per-consumer QoS of ``prefetch``),
declares or finds its queue (the inbox, the triggers queue, a pool's task queue, the
dead-letter queue, or an exclusive, auto-delete queue of this process for event and
cancellation subscriptions), starts a :class:`~spane.bus.rabbit_consumer.BatchConsumer`
on it with the decoder of that queue, and stops them all when the bus closes.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, AbstractRobustQueue

from spane.bus.base import BatchHandler, CancelHandler, EventHandler, TriggerEvent
from spane.bus.codec import decode_cancel, decode_inbox, decode_task
from spane.bus.dead_letters import DeadLetter
from spane.bus.rabbit_consumer import BatchConsumer, Decoder, Replier
from spane.bus.rabbit_consumer import DeadLetter as DeadLetterPublisher
from spane.bus.rabbit_dead_letters import DeadLetterConsumer
from spane.bus.rabbit_declare import Declarer
from spane.bus.rabbit_decoders import (
    body_decoder,
    cancel_batches,
    decode_routed_event,
    event_batches,
    trigger_decoder,
)
from spane.bus.rabbit_messages import results_only, traced_decoder
from spane.bus.topology import Topology
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import InboxMessage, TaskMessage

SUBSCRIPTION_PREFETCH = 256


@dataclass(frozen=True)
class ConsumerSettings:
    """What every consumer of a bus shares: retry pauses, stop grace, body limits."""

    retry_delay: float
    max_retry_delay: float
    stop_grace: float
    max_value_bytes: int
    max_message_bytes: int


class Consumers:
    """Starts the consumers of one bus (through ``connection``) and stops them."""

    def __init__(
        self,
        topology: Topology,
        declare: Declarer,
        connection: Callable[[], AbstractRobustConnection],
        settings: ConsumerSettings,
        *,
        dead_letter: DeadLetterPublisher,
        replier: Replier,
    ) -> None:
        self.topology = topology
        self.settings = settings
        self._declare = declare
        self._connection = connection
        self._dead_letter = dead_letter
        self._replier = replier
        self._consumers: list[BatchConsumer[Any]] = []
        self._token = uuid.uuid4().hex[:8]
        self._counter = itertools.count(1)

    async def stop_all(self) -> None:
        """Stop every consumer, the latest first."""
        for consumer in reversed(self._consumers):
            await consumer.stop()
        self._consumers.clear()

    async def _channel(self, prefetch: int) -> AbstractRobustChannel:
        channel = await self._connection().channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=max(prefetch, 1))  # per consumer, never global
        return channel

    async def _start(
        self,
        name: str,
        channel: AbstractRobustChannel,
        queue: AbstractRobustQueue,
        handler: BatchHandler[Any],
        decode: Decoder[Any],
        prefetch: int,
        *,
        replies: bool = False,
    ) -> BatchConsumer[Any]:
        settings = self.settings
        consumer: BatchConsumer[Any] = BatchConsumer(
            name=name,
            channel=channel,
            queue=queue,
            handler=handler,
            decode=decode,
            prefetch=prefetch,
            dead_letter=self._dead_letter,
            replier=self._replier if replies else None,
            retry_delay=settings.retry_delay,
            max_retry_delay=settings.max_retry_delay,
            stop_grace=settings.stop_grace,
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def inbox(
        self, handler: BatchHandler[InboxMessage], prefetch: int
    ) -> BatchConsumer[InboxMessage]:
        channel = await self._channel(prefetch)
        queue = await self._declare.inbox(channel)
        max_bytes = self.settings.max_message_bytes
        decode = results_only(
            traced_decoder(functools.partial(decode_inbox, max_bytes=max_bytes)),
            self.topology.results_exchange,
        )
        return await self._start("inbox", channel, queue, handler, decode, prefetch, replies=True)

    async def triggers(
        self, handler: BatchHandler[TriggerEvent], prefetch: int
    ) -> BatchConsumer[TriggerEvent]:
        channel = await self._channel(prefetch)
        queue = await self._declare.triggers(channel)
        decode = trigger_decoder(self.settings.max_value_bytes)
        return await self._start("triggers", channel, queue, handler, decode, prefetch)

    async def tasks(
        self, pool: str, handler: BatchHandler[TaskMessage], prefetch: int
    ) -> BatchConsumer[TaskMessage]:
        channel = await self._channel(prefetch)
        queue = await self._declare.task_queue(channel, pool)
        max_bytes = self.settings.max_message_bytes
        decode = traced_decoder(functools.partial(decode_task, max_bytes=max_bytes))
        return await self._start(f"tasks.{pool}", channel, queue, handler, decode, prefetch)

    async def _private_queue(
        self, channel: AbstractRobustChannel, purpose: str, exchange: str, routing_key: str
    ) -> AbstractRobustQueue:
        name = self.topology.private_queue(purpose, f"{self._token}-{next(self._counter)}")
        queue = await channel.declare_queue(
            name,
            exclusive=True,
            auto_delete=True,
            arguments={"x-dead-letter-exchange": self.topology.dlx},
        )
        await queue.bind(exchange, routing_key=routing_key)
        return queue

    async def events(
        self, pattern: str, handler: EventHandler
    ) -> BatchConsumer[tuple[str, LifecycleEvent]]:
        channel = await self._channel(SUBSCRIPTION_PREFETCH)
        queue = await self._private_queue(channel, "events", self.topology.events_exchange, pattern)
        return await self._start(
            f"events.{pattern}",
            channel,
            queue,
            event_batches(handler),
            functools.partial(decode_routed_event, max_bytes=self.settings.max_message_bytes),
            SUBSCRIPTION_PREFETCH,
        )

    async def cancellations(self, handler: CancelHandler) -> BatchConsumer[list[str]]:
        channel = await self._channel(SUBSCRIPTION_PREFETCH)
        queue = await self._private_queue(
            channel, "cancellations", self.topology.cancellations_exchange, ""
        )
        max_bytes = self.settings.max_message_bytes
        return await self._start(
            "cancellations",
            channel,
            queue,
            cancel_batches(handler),
            body_decoder(functools.partial(decode_cancel, max_bytes=max_bytes)),
            SUBSCRIPTION_PREFETCH,
        )

    async def dead_letters(
        self, handler: BatchHandler[DeadLetter], prefetch: int
    ) -> BatchConsumer[DeadLetter]:
        channel = await self._channel(prefetch)
        queue = await channel.declare_queue(
            self.topology.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        settings = self.settings
        timing = (settings.retry_delay, settings.max_retry_delay, settings.stop_grace)
        consumer = DeadLetterConsumer.on(channel, queue, handler, prefetch, *timing)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer
