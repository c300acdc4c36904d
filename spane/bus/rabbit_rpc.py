"""Commands with an answer over RabbitMQ: the AMQP RPC convention with direct reply-to.

A request carries ``reply_to = amq.rabbitmq.reply-to`` and a fresh ``correlation_id``
(the execution id is in the body); the orchestrator answers on that address and the
answer comes back on the channel that published the request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection

from spane.bus.base import Reply
from spane.bus.codec import decode_reply
from spane.bus.rabbit_messages import inbox_outgoing
from spane.bus.rabbit_publish import Outgoing
from spane.bus.topology import Topology
from spane.errors import InvalidMessageError
from spane.schemas.messages import InboxMessage

log = logging.getLogger("spane.bus.rabbit")

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
RPC_PRIORITY = 1

Publish = Callable[[AbstractRobustChannel, list[Outgoing], float], Awaitable[None]]


class RpcClient:
    """Publishes requests on its own channel (opened lazily) and matches the replies."""

    def __init__(
        self,
        topology: Topology,
        connection: Callable[[], AbstractRobustConnection],
        publish: Publish,
        max_reply_bytes: int,
    ) -> None:
        self.topology = topology
        self._connection = connection
        self._publish = publish
        self.max_reply_bytes = max_reply_bytes
        self._channel: AbstractRobustChannel | None = None
        self._lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[Reply]] = {}

    async def _rpc_channel(self) -> AbstractRobustChannel:
        async with self._lock:
            if self._channel is None:
                channel = await self._connection().channel(
                    publisher_confirms=True, on_return_raises=True
                )
                replies = await channel.declare_queue(DIRECT_REPLY_TO)
                await replies.consume(self._on_reply, no_ack=True)
                self._channel = channel
            return self._channel

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is None or future.done():
            log.debug("reply %s arrived after its request gave up", message.correlation_id)
            return
        try:
            future.set_result(decode_reply(message.body, max_bytes=self.max_reply_bytes))
        except InvalidMessageError as exc:
            future.set_exception(exc)

    async def request(self, message: InboxMessage, timeout: float) -> Reply:
        """Publish a command to the orchestrator inbox and wait for its answer; raises
        :class:`TimeoutError` after ``timeout`` seconds."""
        channel = await self._rpc_channel()
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            async with asyncio.timeout(timeout):
                request = inbox_outgoing(
                    self.topology,
                    message,
                    uuid.uuid4().hex,
                    priority=RPC_PRIORITY,
                    reply_to=DIRECT_REPLY_TO,
                    correlation_id=correlation_id,
                )
                await self._publish(channel, [request], timeout)
                return await future
        finally:
            self._pending.pop(correlation_id, None)

    def close(self) -> None:
        """Fail the requests still waiting; the channel closes with the connection."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the bus was closed"))
        self._pending.clear()
        self._channel = None
