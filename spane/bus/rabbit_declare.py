"""Declaring SPANE's RabbitMQ topology (exchanges, quorum queues, bindings); idempotent.

Durable queues are quorum queues with an explicit ``x-delivery-limit`` and the
dead-letter exchange (at-least-once dead-lettering), so a message that keeps failing
ends in ``{ns}.dead-letters`` instead of looping forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from aio_pika.abc import (
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
    ExchangeType,
)
from aiormq.exceptions import ChannelNotFoundEntity

from spane.bus.base import QueueStats
from spane.bus.rabbit_messages import ORCHESTRATOR_ROUTING_KEY
from spane.bus.topology import Topology


class Declarer:
    """Declares the topology of one namespace; remembers which task queues it declared."""

    def __init__(self, topology: Topology, delivery_limit: int) -> None:
        self.topology = topology
        self.delivery_limit = delivery_limit
        self.task_types: set[str] = set()
        self.triggers_declared = False

    def forget(self) -> None:
        """After a reconnect nothing is assumed declared."""
        self.task_types.clear()
        self.triggers_declared = False

    def quorum_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.topology.dlx,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    async def all(self, channel: AbstractRobustChannel) -> None:
        """Every exchange, the dead-letter queue and the orchestrator inbox."""
        top = self.topology
        kinds = {
            top.tasks_exchange: ExchangeType.DIRECT,
            top.orchestrator_exchange: ExchangeType.DIRECT,
            top.results_exchange: ExchangeType.DIRECT,
            top.triggers_exchange: ExchangeType.TOPIC,
            top.events_exchange: ExchangeType.TOPIC,
            top.cancellations_exchange: ExchangeType.FANOUT,
            top.dlx: ExchangeType.FANOUT,
        }
        for name, kind in kinds.items():
            await channel.declare_exchange(name, kind, durable=True)
        dead = await channel.declare_queue(
            top.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(top.dlx, routing_key="")
        await self.inbox(channel)

    async def inbox(self, channel: AbstractRobustChannel) -> AbstractRobustQueue:
        top = self.topology
        queue = await channel.declare_queue(
            top.orchestrator_queue, durable=True, arguments=self.quorum_arguments()
        )
        await queue.bind(top.orchestrator_exchange, routing_key=ORCHESTRATOR_ROUTING_KEY)
        await queue.bind(top.results_exchange, routing_key=ORCHESTRATOR_ROUTING_KEY)
        return queue

    async def task_queue(
        self, channel: AbstractRobustChannel, task_type: str
    ) -> AbstractRobustQueue:
        queue = await channel.declare_queue(
            self.topology.task_queue(task_type), durable=True, arguments=self.quorum_arguments()
        )
        await queue.bind(self.topology.tasks_exchange, routing_key=task_type)
        self.task_types.add(task_type)
        return queue

    async def triggers(self, channel: AbstractRobustChannel) -> AbstractRobustQueue:
        top = self.topology
        queue = await channel.declare_queue(
            top.triggers_queue, durable=True, arguments=self.quorum_arguments()
        )
        await queue.bind(top.triggers_exchange, routing_key="#")
        self.triggers_declared = True
        return queue


async def queue_stats(
    connection: AbstractRobustConnection, topology: Topology, pools: Sequence[str]
) -> dict[str, QueueStats]:
    """Each pool's ready messages and consumers, from a passive declare of its queue (which
    creates nothing). A missing queue is ``QueueStats(0, 0)``; the broker closes a channel
    whose passive declare fails, so each pool gets a short-lived channel of its own."""
    stats: dict[str, QueueStats] = {}
    for pool in pools:
        channel = await connection.channel(publisher_confirms=False)
        try:
            queue = await channel.declare_queue(topology.task_queue(pool), passive=True)
            result = queue.declaration_result
            stats[pool] = QueueStats(result.message_count or 0, result.consumer_count or 0)
        except ChannelNotFoundEntity:
            stats[pool] = QueueStats(0, 0)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
    return stats
