"""How a :class:`~spane.bus.rabbit_consumer.BatchConsumer` settles its deliveries.

:class:`Settlement` keeps the deliveries a consumer has taken and not settled yet, and
acks or nacks (with requeue) them: with ``multiple=True`` (one frame per channel for the
batch) only when every earlier delivery of that channel the consumer took is settled,
otherwise each on its own, so nothing is ever acked that was not settled. Deliveries are
grouped per AMQP channel, since tags restart on the channel a robust connection reopens.

A delivery whose channel has closed (a connection loss) cannot be settled any more: the
broker has already put it back in the queue. It is forgotten and logged at debug level
(:meth:`Settlement.gone`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import aiormq.abc
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

log = logging.getLogger("spane.bus.rabbit")


def live_channel(message: AbstractIncomingMessage) -> aiormq.abc.AbstractChannel | None:
    """The AMQP channel ``message`` came on, or None once that channel has closed (aio-pika
    raises :class:`ChannelInvalidStateError` on ``message.channel`` then)."""
    try:
        channel = message.channel
    except ChannelInvalidStateError:
        return None
    return None if channel.is_closed else channel


def _channel_id(message: AbstractIncomingMessage) -> int | None:
    channel = live_channel(message)
    return None if channel is None else id(channel)


class Settlement:
    """The unsettled deliveries of one consumer (named ``name`` in the log) and their
    acks and nacks; the consumer's runner is the only code settling its channel."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.unsettled: dict[int, AbstractIncomingMessage] = {}
        """Deliveries taken from the buffer and not settled yet, by ``id()``."""

    def take(self, messages: Iterable[AbstractIncomingMessage]) -> None:
        """Record ``messages`` as taken (unsettled until acked or nacked)."""
        self.unsettled.update((id(m), m) for m in messages)

    def gone(self, message: AbstractIncomingMessage) -> None:
        """``message``'s channel closed: the broker requeued it; nothing to settle."""
        self.unsettled.pop(id(message), None)
        log.debug(
            "consumer %s: delivery %s (message %s) came on a closed channel; "
            "the broker redelivers it",
            self.name,
            message.delivery_tag,
            message.message_id,
        )

    async def settle(self, messages: Sequence[AbstractIncomingMessage], *, ok: bool) -> None:
        """Ack (or nack with requeue) ``messages``: one ``multiple`` frame per channel when
        every earlier delivery of that channel is settled, else one frame each."""
        groups: dict[int, list[AbstractIncomingMessage]] = {}
        for message in messages:
            channel = live_channel(message)
            if channel is None:
                self.gone(message)
            else:
                groups.setdefault(id(channel), []).append(message)
        for channel_id, group in groups.items():
            last = max(group, key=lambda m: m.delivery_tag or 0)
            if self._covers(channel_id, group, last) and await self._send(
                last, ok=ok, multiple=True
            ):
                for message in group:
                    self.unsettled.pop(id(message), None)
            else:
                await self.settle_each(group, ok=ok)

    def _covers(
        self, channel_id: int, group: list[AbstractIncomingMessage], last: AbstractIncomingMessage
    ) -> bool:
        """Whether a ``multiple`` frame up to ``last`` settles exactly ``group``: no other
        delivery of that channel with a lower tag is unsettled."""
        members = {id(m) for m in group}
        return len(group) > 1 and not any(
            id(other) not in members
            and (other.delivery_tag or 0) < (last.delivery_tag or 0)
            and _channel_id(other) == channel_id
            for other in self.unsettled.values()
        )

    async def settle_each(self, messages: Sequence[AbstractIncomingMessage], *, ok: bool) -> None:
        for message in messages:
            if live_channel(message) is None:
                self.gone(message)
            elif await self._send(message, ok=ok, multiple=False):
                self.unsettled.pop(id(message), None)

    async def _send(self, message: AbstractIncomingMessage, *, ok: bool, multiple: bool) -> bool:
        """One ack/nack frame; False (logged) if it could not be sent on a live channel."""
        try:
            if ok:
                await message.ack(multiple=multiple)
            else:
                await message.nack(multiple=multiple, requeue=True)
        except Exception as exc:
            if live_channel(message) is None:
                self.gone(message)  # closed under us: already requeued by the broker
                return True
            log.warning(
                "consumer %s: %s of delivery %s failed: %r",
                self.name,
                "ack" if ok else "nack",
                message.delivery_tag,
                exc,
            )
            return False
        return True

    async def requeue_unsettled(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        """After a batch: whatever of it is still unsettled goes back to the queue, one by
        one (never covered by a later ``multiple`` ack)."""
        left = [m for m in batch if id(m) in self.unsettled]
        if left:
            log.warning(
                "consumer %s: %d delivery(ies) left unsettled; requeueing them",
                self.name,
                len(left),
            )
            await self.settle_each(left, ok=False)
        for message in list(self.unsettled.values()):
            if live_channel(message) is None:
                self.gone(message)
