"""The RabbitMQ adapter of the :class:`~spane.bus.base.Bus` protocol (aio-pika).

Topology (DESIGN §4), every name prefixed by the namespace (``spane`` by default)::

    {ns}.tasks          direct  -- <pool> -->  {ns}.tasks.<pool>   quorum, one per pool
    {ns}.orchestrator   direct  -- ""     -->  {ns}.orchestrator   quorum, the inbox
    {ns}.triggers       topic   (trigger events; consumed by the trigger router)
    {ns}.events         topic   -- <pattern> -> exclusive queue per subscription
    {ns}.cancellations  fanout  --> exclusive queue per subscribing process
    {ns}.dlx            fanout  --> {ns}.dead-letters              quorum

Quorum queues carry ``x-delivery-limit`` and ``x-dead-letter-exchange`` (at-least-once
dead-lettering), so a message that keeps failing ends in ``{ns}.dead-letters`` instead
of looping forever. A task queue is declared both by the pool consuming it and by the
first publication to that pool, so tasks wait for a pool that starts later. A pool is
named like its task type unless a node names one (``pool:``, :mod:`spane.schemas.pools`).

What consumers accept, and how every delivery is settled (processed, dead-lettered with
its reason, or redelivered; nothing acked unsettled; ids of messages without
``message_id``), is described in :mod:`spane.bus.rabbit_consumer`; the limits on bodies
(size, nesting, 64-bit integers, finite numbers, content types) in :mod:`spane.bus.codec`.
``publish_trigger`` refuses a body that breaks those limits with
:class:`~spane.errors.InvalidMessageError` instead of publishing it.

Publishing goes through one channel with publisher confirms; the confirms of a batch
are awaited together, tasks and inbox messages are ``mandatory`` (an unroutable message
raises :class:`aio_pika.exceptions.PublishError`). While the connection is down, a
publication waits for the robust connection to come back and is retried, for at most
``publish_timeout`` seconds (:mod:`spane.bus.rabbit_publish`). Consumers are
:class:`~spane.bus.rabbit_consumer.BatchConsumer` objects, one channel each, started
and stopped by :class:`~spane.bus.rabbit_subscriptions.Consumers`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import PublishError

from spane.bus.base import (
    BatchHandler,
    CancelHandler,
    EventHandler,
    QueueStats,
    Reply,
    TriggerEvent,
)
from spane.bus.codec import MESSAGE_BYTES_FACTOR
from spane.bus.dead_letters import DeadLetter
from spane.bus.event_routes import EventRoutes
from spane.bus.rabbit_consumer import (
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEFAULT_MAX_RETRY_DELAY,
    DEFAULT_RETRY_DELAY,
    DEFAULT_STOP_GRACE,
    BatchConsumer,
)
from spane.bus.rabbit_dead_letters import redrive_outgoing, redrive_problem, unroutable
from spane.bus.rabbit_declare import Declarer, queue_stats
from spane.bus.rabbit_decoders import dead_letter_copy
from spane.bus.rabbit_messages import (
    cancel_outgoing,
    event_outgoing,
    inbox_outgoing,
    reply_outgoing,
    task_outgoing,
    trigger_outgoing,
)
from spane.bus.rabbit_publish import Outgoing, publish_all
from spane.bus.rabbit_rpc import RpcClient
from spane.bus.rabbit_subscriptions import Consumers, ConsumerSettings
from spane.bus.topology import Topology
from spane.errors import CommandRejectedError
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
from spane.schemas.events import LifecycleEvent, is_node_event
from spane.schemas.messages import InboxMessage, TaskHeartbeat, TaskMessage, TaskResult

__all__ = ["DEAD_LETTER_QUEUE_HEADER", "DEAD_LETTER_REASON_HEADER", "RabbitBus"]

log = logging.getLogger("spane.bus.rabbit")


HEARTBEAT = 10
"""Seconds between AMQP heartbeats unless the URL sets ``heartbeat=``: a hung process
(alive, connected, not working) loses its connection, and the deliveries it holds go to
another consumer, within a few heartbeats instead of the client default of 60 s."""


def with_heartbeat(url: str) -> str:
    """``url`` with ``heartbeat=HEARTBEAT`` added unless it names one."""
    if "heartbeat=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}heartbeat={HEARTBEAT}"


def default_connection_name() -> str:
    return f"spane@{socket.gethostname()}:{os.getpid()}"


class RabbitBus:
    """:class:`~spane.bus.base.Bus` on RabbitMQ (3.10+) through one robust connection.

    ``delivery_limit`` is the quorum queues' ``x-delivery-limit``: how many times a
    message may be delivered before it is dead-lettered. ``publish_timeout`` bounds how
    long a publication waits (for confirms, and for the connection during an outage)
    before raising. A handler that raises is retried after ``retry_delay`` seconds,
    doubling per consecutive failure up to ``max_retry_delay``. ``stop_grace`` bounds how
    long a subscription's ``stop()`` waits for a running handler call before cancelling it.
    ``max_value_bytes`` (``Settings.max_value_bytes``) bounds a trigger body; a SPANE
    message body may be :data:`~spane.bus.codec.MESSAGE_BYTES_FACTOR` times that.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "spane",
        connection_name: str | None = None,
        delivery_limit: int = 20,
        publish_timeout: float = 30.0,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        stop_grace: float = DEFAULT_STOP_GRACE,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        declare_topology: bool = True,
    ) -> None:
        self.url = url
        self.max_value_bytes = max_value_bytes
        self.declare_topology = declare_topology
        """Declare every exchange and the inbox on connect (orchestrators, clients); a
        worker does not (its broker user may configure only its own queues)."""
        self.max_message_bytes = MESSAGE_BYTES_FACTOR * max_value_bytes
        self.topology = Topology(namespace)
        self.connection_name = connection_name or default_connection_name()
        self.delivery_limit = delivery_limit
        self.publish_timeout = publish_timeout
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.stop_grace = stop_grace
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._declare = Declarer(self.topology, delivery_limit)
        self._routes = EventRoutes()
        """Node-event routing keys no queue is bound to, as the broker last returned them."""
        self._rpc = RpcClient(self.topology, self._conn, self._publish_rpc, self.max_message_bytes)
        settings = ConsumerSettings(
            retry_delay, max_retry_delay, stop_grace, max_value_bytes, self.max_message_bytes
        )
        self._consumers = Consumers(
            self.topology,
            self._declare,
            self._conn,
            settings,
            dead_letter=self._dead_letter,
            replier=self._replier,
        )

    # ------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        """Open the connection and the publisher channel; declare the topology."""
        if self._connection is not None:
            return
        connection = await aio_pika.connect_robust(
            with_heartbeat(self.url), client_properties={"connection_name": self.connection_name}
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            if self.declare_topology:
                await self._declare.all(channel)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._publisher = channel

    async def close(self) -> None:
        """Stop every consumer, fail pending requests, close channels and the connection."""
        await self._consumers.stop_all()
        self._rpc.close()
        connection, self._connection = self._connection, None
        self._publisher = None
        self._declare.forget()
        if connection is not None:
            await connection.close()

    @property
    def connected(self) -> bool:
        """Connected now (False while the robust connection is reconnecting)."""
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    def _channel(self) -> AbstractRobustChannel:
        if self._publisher is None:
            raise RuntimeError("RabbitBus is not connected; call connect() first")
        return self._publisher

    def _conn(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("RabbitBus is not connected; call connect() first")
        return self._connection

    # ----------------------------------------------------------- publishing
    async def publish_tasks(self, tasks: Sequence[TaskMessage]) -> None:
        """Publish task attempts to ``{ns}.tasks.<pool>`` (declared on first use).

        ``priority`` is set on each message; quorum queues honour it from RabbitMQ 4.0.
        """
        if not tasks:
            return
        channel = self._channel()
        for pool in sorted({task.pool_name for task in tasks} - self._declare.task_types):
            await self._declare.task_queue(channel, pool)
        outgoing = [task_outgoing(self.topology, task) for task in tasks]
        await self._publish_all(channel, outgoing)

    async def publish_inbox(self, messages: Sequence[InboxMessage]) -> None:
        if messages:
            top = self.topology
            outgoing = [inbox_outgoing(top, m, uuid.uuid4().hex) for m in messages]
            await self._publish_all(self._channel(), outgoing)

    async def publish_results(self, messages: Sequence[TaskResult | TaskHeartbeat]) -> None:
        """Workers' results and heartbeats, through the results exchange."""
        if messages:
            top = self.topology
            outgoing = [
                inbox_outgoing(top, m, uuid.uuid4().hex, exchange=top.results_exchange)
                for m in messages
            ]
            await self._publish_all(self._channel(), outgoing)

    async def publish_events(self, events: Sequence[tuple[str, LifecycleEvent]]) -> None:
        """CloudEvents in structured mode; an event nobody subscribed to is not an error.

        Node events are ``mandatory``: one the broker returns (no queue bound to its
        routing key) holds that key's events back for a few seconds
        (:mod:`spane.bus.event_routes`). Execution events are always published.
        """
        routes = self._routes
        outgoing = []
        for key, event in events:
            node = is_node_event(event)
            if node and routes.unbound(key):
                continue
            outgoing.append(event_outgoing(self.topology, key, event, mandatory=node))
        if outgoing:
            returned = routes.returned
            await self._publish_all(
                self._channel(), outgoing, on_return=lambda item: returned(item.routing_key)
            )

    def node_events_wanted(self) -> bool:
        return True  # queues bound to the events exchange are not known to this process

    async def broadcast_cancel(self, task_ids: Sequence[str]) -> None:
        """One fanout message carrying every id; workers not running them ignore it."""
        if not task_ids:
            return
        outgoing = cancel_outgoing(self.topology, task_ids, uuid.uuid4().hex)
        await self._publish_all(self._channel(), [outgoing])

    async def _publish_all(
        self,
        channel: AbstractRobustChannel,
        outgoing: Sequence[Outgoing],
        timeout: float | None = None,
        on_return: Callable[[Outgoing], None] | None = None,
    ) -> None:
        """:func:`~spane.bus.rabbit_publish.publish_all` within ``timeout``
        (``publish_timeout`` by default)."""
        await publish_all(
            channel, outgoing, self.publish_timeout if timeout is None else timeout, on_return
        )

    async def request(self, message: InboxMessage, timeout: float = 30.0) -> Reply:
        """Publish a command to the orchestrator inbox and wait for its answer (direct
        reply-to, :mod:`spane.bus.rabbit_rpc`); raises :class:`TimeoutError`."""
        return await self._rpc.request(message, timeout)

    def _replier(
        self, message: AbstractIncomingMessage
    ) -> Callable[[Reply], Awaitable[None]] | None:
        reply_to = message.reply_to
        if not reply_to:
            return None
        correlation_id = message.correlation_id

        async def reply(value: Reply) -> None:
            outgoing = reply_outgoing(reply_to, correlation_id, value)
            try:
                await self._publish_all(self._channel(), [outgoing])
            except Exception as exc:  # the caller may be gone; the command is applied
                log.warning("could not answer %s on %s: %s", correlation_id, reply_to, exc)

        return reply

    async def _publish_rpc(
        self, channel: AbstractRobustChannel, outgoing: list[Outgoing], timeout: float
    ) -> None:
        await self._publish_all(channel, outgoing, timeout)

    # -------------------------------------------------------- dead letters
    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str, queue: str) -> None:
        """Publish ``message``'s copy to ``{ns}.dlx`` with the reason in a header, confirmed
        (raises if it is not: the consumer then requeues the delivery, which settles it)."""
        copy = dead_letter_copy(message, reason, queue)
        outgoing = Outgoing.of(self.topology.dlx, queue, copy, True)
        await self._publish_all(self._channel(), [outgoing])

    async def consume_dead_letters(
        self, handler: BatchHandler[DeadLetter], *, prefetch: int
    ) -> BatchConsumer[DeadLetter]:
        """Consume ``{ns}.dead-letters`` (:mod:`spane.bus.rabbit_dead_letters`): each
        batch is acked once ``handler`` returns (it stores them)."""
        return await self._consumers.dead_letters(handler, prefetch)

    async def redrive(self, entry: DeadLetter) -> None:
        """Re-publish a dead letter to its original exchange and routing key (confirmed);
        one :func:`~spane.bus.rabbit_dead_letters.redrive_problem` finds, or that no queue
        takes, raises :class:`~spane.errors.CommandRejectedError`."""
        problem = redrive_problem(self.topology, entry)
        if problem is not None:
            raise CommandRejectedError(problem)
        try:
            await self._publish_all(self._channel(), [redrive_outgoing(entry)])
        except PublishError as exc:
            raise CommandRejectedError(unroutable(entry)) from exc

    # ------------------------------------------------------------ consuming
    # (each consumer on its own channel: :mod:`spane.bus.rabbit_subscriptions`)
    async def consume_inbox(
        self, handler: BatchHandler[InboxMessage], *, prefetch: int
    ) -> BatchConsumer[InboxMessage]:
        return await self._consumers.inbox(handler, prefetch)

    async def publish_trigger(
        self, routing_key: str, body: Any, *, headers: dict[str, Any] | None = None
    ) -> None:
        """Publish a trigger; CloudEvents (with ``specversion``) keep their content type.

        A body JSON cannot carry faithfully (non-finite numbers, integers past 64 bits,
        nesting past :data:`~spane.bus.codec.MAX_VALUE_DEPTH`, over ``max_value_bytes``)
        raises :class:`~spane.errors.InvalidMessageError` and publishes nothing.
        """
        outgoing = trigger_outgoing(
            self.topology,
            routing_key,
            body,
            uuid.uuid4().hex,
            max_value_bytes=self.max_value_bytes,
            headers=headers,
        )
        channel = self._channel()
        if not self._declare.triggers_declared:
            await self._declare.triggers(channel)
        await self._publish_all(channel, [outgoing])

    async def consume_triggers(
        self, handler: BatchHandler[TriggerEvent], *, prefetch: int
    ) -> BatchConsumer[TriggerEvent]:
        return await self._consumers.triggers(handler, prefetch)

    async def consume_tasks(
        self, pool: str, handler: BatchHandler[TaskMessage], *, prefetch: int
    ) -> BatchConsumer[TaskMessage]:
        return await self._consumers.tasks(pool, handler, prefetch)

    async def pool_stats(self, pools: Sequence[str]) -> dict[str, QueueStats]:
        """Ready messages and consumers per pool queue (passive declares: creates nothing)."""
        return await queue_stats(self._conn(), self.topology, pools)

    async def subscribe_events(
        self, pattern: str, handler: EventHandler
    ) -> BatchConsumer[tuple[str, LifecycleEvent]]:
        """An exclusive, auto-delete queue bound with ``pattern``; lives with this process.

        A handler that raises is logged and the event dropped (as on the memory bus).
        """
        consumer = await self._consumers.events(pattern, handler)
        self._routes.forget()  # this process's own node events reach it from now on
        return consumer

    async def subscribe_cancellations(self, handler: CancelHandler) -> BatchConsumer[list[str]]:
        """This process's queue on the cancellations fanout."""
        return await self._consumers.cancellations(handler)
