"""The micro-batching consumer behind every RabbitMQ subscription.

Deliveries pushed by the broker (at most ``prefetch`` unacknowledged, per-consumer QoS)
are appended to a local buffer; one runner task takes *whatever has arrived*, up to
``prefetch``, decodes it and calls the batch handler, then settles the batch:

- handler returned -> ``basic.ack(multiple=True)`` on the batch's last delivery tag;
- handler raised -> after a growing pause, ``basic.nack(multiple=True, requeue=True)``:
  the batch is redelivered with the ``redelivered`` flag, and the quorum queue's
  ``x-delivery-limit`` eventually dead-letters a message that always fails;
- a message that does not decode is dead-lettered on its own at once (``DeadLetter``),
  with the reason, and never reaches the handler.

``multiple=True`` is safe because this runner is the only code settling deliveries of
its channel and takes them in delivery-tag order: when a batch is settled, every
earlier tag of that channel was settled by an earlier batch or by the dead-letter path,
and later tags are still in the buffer. Deliveries are grouped per AMQP channel, since
tags restart on the channel a robust connection reopens; a delivery whose channel has
closed is skipped, because the broker redelivers it anyway.

A redelivered message is handled in a batch of its own: if one poison message made a
batch fail, the others get through on their own instead of sharing its fate at the
delivery limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from spane.bus.base import (
    BatchHandler,
    CancelHandler,
    Delivery,
    EventHandler,
    Reply,
    TriggerEvent,
)
from spane.bus.codec import check_schema, decode_event
from spane.errors import InvalidMessageError
from spane.schemas.events import LifecycleEvent

log = logging.getLogger("spane.bus.rabbit")

T = TypeVar("T")

Decoder = Callable[[AbstractIncomingMessage], T]
"""Body (and properties) -> value; raises :class:`InvalidMessageError` with a reason."""
DeadLetter = Callable[[AbstractIncomingMessage, str, str], Awaitable[None]]
"""``(message, reason, queue name)``: move an undecodable message to the DLX."""
Replier = Callable[[AbstractIncomingMessage], Callable[[Reply], Awaitable[None]] | None]
"""Builds :attr:`Delivery.reply` for a message that asks for an answer."""

DEFAULT_RETRY_DELAY = 0.05
DEFAULT_MAX_RETRY_DELAY = 5.0
DEFAULT_STOP_GRACE = 30.0
DEAD_LETTER_REASON_HEADER = "spane-dead-letter-reason"
"""Why SPANE dead-lettered a message (queues' own dead-lettering adds ``x-death``)."""
DEAD_LETTER_QUEUE_HEADER = "spane-dead-letter-queue"
"""The queue the message was consumed from."""
MAX_REASON_LENGTH = 1024


def fallback_message_id(body: bytes) -> str:
    """Id of a message published without ``message_id``: derived from the body, so that
    a redelivery of the same outside command keeps its id (and is applied once)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


class BatchConsumer(Generic[T]):
    """One consumer on its own channel; :meth:`stop` is its ``Subscription.stop``."""

    def __init__(
        self,
        *,
        name: str,
        channel: AbstractChannel,
        queue: AbstractQueue,
        handler: BatchHandler[T],
        decode: Decoder[T],
        prefetch: int,
        dead_letter: DeadLetter,
        replier: Replier | None = None,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        stop_grace: float = DEFAULT_STOP_GRACE,
    ) -> None:
        self.name = name
        self._channel = channel
        self._queue = queue
        self._handler = handler
        self._decode = decode
        self._prefetch = max(prefetch, 1)
        self._dead_letter = dead_letter
        self._replier = replier
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._stop_grace = stop_grace
        self._buffer: deque[AbstractIncomingMessage] = deque()
        self._arrived = asyncio.Event()
        self._failures = 0
        self._busy = False
        self._stopping = False
        self._tag: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"spane-consume-{self.name}")
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self) -> None:
        """Cancel the consumer, let a running handler call finish, close the channel.

        A handler call still running after ``stop_grace`` seconds is cancelled. Deliveries
        not acknowledged go back to the queue when the channel closes.
        """
        if self._stopping:
            return
        self._stopping = True
        if self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # the channel may already be gone
                log.debug("cancelling consumer %s: %s", self.name, exc)
        task = self._task
        if task is not None:
            if self._busy:
                await asyncio.wait({task}, timeout=self._stop_grace)
            if not task.done():
                if self._busy:
                    log.warning("consumer %s: cancelling its handler on stop", self.name)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._channel.is_closed:
            try:
                await self._channel.close()
            except Exception as exc:
                log.debug("closing channel of %s: %s", self.name, exc)

    @property
    def stopped(self) -> bool:
        return self._stopping

    # ------------------------------------------------------------ internals
    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        self._arrived.set()

    async def _run(self) -> None:
        while not self._stopping:
            while not self._buffer:
                self._arrived.clear()
                await self._arrived.wait()
            batch = self._take_batch()
            self._busy = True
            try:
                await self._process(batch)
            except Exception:
                log.exception("consumer %s: unexpected failure; continuing", self.name)
            finally:
                self._busy = False

    def _take_batch(self) -> list[AbstractIncomingMessage]:
        batch: list[AbstractIncomingMessage] = []
        while self._buffer and len(batch) < self._prefetch:
            redelivered = bool(self._buffer[0].redelivered)
            if redelivered and batch:
                break
            batch.append(self._buffer.popleft())
            if redelivered:
                break
        return batch

    async def _process(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        accepted: list[AbstractIncomingMessage] = []
        deliveries: list[Delivery[T]] = []
        for message in messages:
            if message.channel.is_closed:
                continue  # its channel died; the broker redelivers it
            try:
                deliveries.append(self._delivery(message))
            except InvalidMessageError as exc:
                await self._dead_letter(message, str(exc), self._queue.name)
                continue
            accepted.append(message)
        if not deliveries:
            return
        try:
            await self._handler(deliveries)
        except Exception:
            self._failures += 1
            delay = min(self._retry_delay * 2 ** (self._failures - 1), self._max_retry_delay)
            log.exception(
                "consumer %s: handler failed; %d message(s) redelivered in %.2fs",
                self.name,
                len(accepted),
                delay,
            )
            await asyncio.sleep(delay)
            await _settle(accepted, ok=False)
            return
        self._failures = 0
        await _settle(accepted, ok=True)

    def _delivery(self, message: AbstractIncomingMessage) -> Delivery[T]:
        headers: dict[str, Any] = dict(message.headers or {})
        check_schema(headers)
        value = self._decode(message)
        return Delivery(
            value,
            message.message_id or fallback_message_id(message.body),
            reply=self._replier(message) if self._replier is not None else None,
            headers=headers,
            redelivered=bool(message.redelivered),
        )


async def _settle(messages: Sequence[AbstractIncomingMessage], *, ok: bool) -> None:
    """Ack (or nack with requeue) ``messages`` with one frame per AMQP channel."""
    last_per_channel: dict[int, AbstractIncomingMessage] = {}
    for message in messages:
        last_per_channel[id(message.channel)] = message
    for last in last_per_channel.values():
        try:
            if ok:
                await last.ack(multiple=True)
            else:
                await last.nack(multiple=True, requeue=True)
        except Exception as exc:
            # The channel closed under us: the broker redelivers these messages.
            log.warning("settling deliveries failed (%s); they will be redelivered", exc)


# --------------------------------------------------------------- helpers
def body_decoder(decode: Callable[[bytes], T]) -> Decoder[T]:
    """A :data:`Decoder` that looks at the body only."""

    def decoder(message: AbstractIncomingMessage) -> T:
        return decode(message.body)

    return decoder


def decode_trigger(message: AbstractIncomingMessage) -> TriggerEvent:
    """Any JSON body; the routing key is the event type."""
    try:
        body = json.loads(message.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessageError(f"trigger body is not JSON: {exc}") from None
    return TriggerEvent(message.routing_key or "", body)


def decode_routed_event(message: AbstractIncomingMessage) -> tuple[str, LifecycleEvent]:
    return message.routing_key or "", decode_event(message.body)


def event_batches(handler: EventHandler) -> BatchHandler[tuple[str, LifecycleEvent]]:
    """Calls ``handler`` per event; a failure is logged and the event dropped."""

    async def on_batch(deliveries: Sequence[Delivery[tuple[str, LifecycleEvent]]]) -> None:
        for delivery in deliveries:
            routing_key, event = delivery.message
            try:
                await handler(routing_key, event)
            except Exception:
                log.exception("event subscriber failed on %s", routing_key)

    return on_batch


def cancel_batches(handler: CancelHandler) -> BatchHandler[list[str]]:
    """Calls ``handler`` per task id of each broadcast; a failure is logged."""

    async def on_batch(deliveries: Sequence[Delivery[list[str]]]) -> None:
        for delivery in deliveries:
            for task_id in delivery.message:
                try:
                    await handler(task_id)
                except Exception:
                    log.exception("cancellation handler failed for %s", task_id)

    return on_batch


def dead_letter_copy(message: AbstractIncomingMessage, reason: str, queue: str) -> aio_pika.Message:
    """The persistent copy of ``message`` sent to the DLX, with why and where from."""
    headers: dict[str, Any] = dict(message.headers or {})
    headers[DEAD_LETTER_REASON_HEADER] = reason[:MAX_REASON_LENGTH]
    headers[DEAD_LETTER_QUEUE_HEADER] = queue
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
    )
