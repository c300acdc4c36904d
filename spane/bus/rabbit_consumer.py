"""The micro-batching consumer behind every RabbitMQ subscription.

Deliveries pushed by the broker (at most ``prefetch`` unacknowledged, per-consumer QoS)
are appended to a local buffer; one runner task takes *whatever has arrived*, up to
``prefetch``, decodes it and calls the batch handler, then settles the batch. Every
delivery taken ends in exactly one of three fates:

- **processed**: the handler returned -> ``basic.ack``;
- **dead-lettered**: it does not decode (any exception of the decoder, an unsupported
  content type, an unknown schema version, a value JSON cannot carry faithfully -- see
  :mod:`spane.bus.codec`) -> a persistent copy goes to the DLX with the reason in the
  ``spane-dead-letter-reason`` header (and the log), then the delivery is acked on its
  own; it never reaches the handler. A refused request with ``reply_to`` (a command
  sent as an RPC) is answered ``{"ok": false, "error": <reason>}``;
- **waiting**: the handler failed because a server is unreachable (Redis, MongoDB, the
  broker; :func:`spane.errors.is_transient`) -> the deliveries are kept and the handler
  is called again after a growing pause, with a log line per try, for as long as the
  outage lasts: an outage only delays work, it never dead-letters it;
- **redelivered**: the handler raised for another reason -> after a growing pause,
  ``basic.nack(requeue=True)``, and the quorum queue's ``x-delivery-limit`` eventually
  dead-letters a message that always fails; likewise a delivery whose dead-letter copy
  could not be published (it is dead-lettered, with its reason, when it comes back),
  one whose settlement
  failed on a live channel, and one left unsettled by an unexpected failure of this
  runner (nacked one by one before the next batch is taken).

A delivery whose channel has closed (a connection loss; the robust connection reopens
the channel and re-consumes) cannot be settled any more: the broker has already put it
back in the queue. It is skipped -- not decoded, not handed over, not acked -- and
logged at debug level; it does not stop the batch's other settlements.

Acks and nacks use ``multiple=True`` (one frame per channel for the batch) only when
every earlier delivery of that channel this consumer took is settled; otherwise each
delivery is settled on its own. Nothing is ever acked that was not settled: this runner
is the only code settling deliveries of its channel and keeps the set of deliveries it
has taken and not yet settled (:class:`~spane.bus.rabbit_settlement.Settlement`).
Deliveries are grouped per AMQP channel, since tags restart on the channel a robust
connection reopens. The decoders and batch adapters of the subscriptions, and the
dead-letter copy, are in :mod:`spane.bus.rabbit_decoders`.

A redelivered message is handled in a batch of its own: if one poison message made a
batch fail, the others get through on their own instead of sharing its fate at the
delivery limit.

**Message ids.** A delivery's id is its AMQP ``message_id``. A message published without
one (an outside producer) gets a fresh unique id per delivery
(:func:`generated_message_id`): two identical events are two events, so a trigger
without an id starts its workflow once per delivery (a redelivery after a crash may
start it again). A producer that needs exactly-once starts sets ``message_id``, or the
``spane-idempotency-key`` header, which deduplicates starts downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from spane import retrying
from spane.bus.base import BatchHandler, Delivery, Reply
from spane.bus.codec import check_content_type, check_schema
from spane.bus.rabbit_settlement import Settlement, live_channel
from spane.errors import InvalidMessageError, is_transient

log = logging.getLogger("spane.bus.rabbit")

T = TypeVar("T")

Decoder = Callable[[AbstractIncomingMessage], T]
"""Body (and properties) -> value; raises :class:`InvalidMessageError` with a reason
(any other exception is treated the same way)."""
DeadLetter = Callable[[AbstractIncomingMessage, str, str], Awaitable[None]]
"""``(message, reason, queue name)``: publish the message's copy to the DLX, confirmed;
raises if it was not. The consumer settles the delivery itself."""
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
GENERATED_ID_PREFIX = "delivery-"


def generated_message_id() -> str:
    """Id of a delivery whose message has no ``message_id``: unique per delivery, so two
    identical messages are never merged into one (see the module docstring)."""
    return GENERATED_ID_PREFIX + uuid.uuid4().hex


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
        self._settlement = Settlement(name)
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
            self._settlement.take(batch)
            self._busy = True
            try:
                await self._process(batch)
            except Exception:
                log.exception("consumer %s: unexpected failure on a batch", self.name)
            finally:
                self._busy = False
            await self._settlement.requeue_unsettled(batch)

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
            if live_channel(message) is None:
                self._gone(message)
                continue
            try:
                delivery = self._delivery(message)
            except Exception as exc:
                reason = str(exc) if isinstance(exc, InvalidMessageError) else _reason(exc)
                await self._reject(message, reason or type(exc).__name__)
                continue
            deliveries.append(delivery)
            accepted.append(message)
        if not deliveries:
            return
        try:
            await self._handle(deliveries, accepted)
        except Exception:
            self._failures += 1
            delay = self._backoff()
            log.exception(
                "consumer %s: handler failed; %d message(s) redelivered in %.2fs",
                self.name,
                len(accepted),
                delay,
            )
            await asyncio.sleep(delay)
            await self._settle(accepted, ok=False)
            return
        self._failures = 0
        await self._settle(accepted, ok=True)

    async def _handle(
        self, deliveries: list[Delivery[T]], messages: Sequence[AbstractIncomingMessage]
    ) -> None:
        """Call the handler; while it fails because a server is unreachable (Redis,
        MongoDB, the broker: :func:`spane.errors.is_transient`), keep the deliveries and
        call it again after a growing pause, for as long as the outage lasts. Requeueing
        them would count towards the delivery limit and dead-letter good messages during
        a long outage. Other failures are raised (the caller requeues the batch)."""

        def keep_trying(exc: BaseException) -> bool:
            live = any(live_channel(m) is not None for m in messages)
            return is_transient(exc) and not self._stopping and live

        def on_retry(exc: BaseException | None, outage: int, delay: float) -> None:
            log.warning(
                "consumer %s: a server is unreachable (%r); %d message(s) kept, "
                "retrying in %.2fs (attempt %d)",
                self.name,
                exc,
                sum(live_channel(m) is not None for m in messages),
                delay,
                outage,
            )

        def policy() -> retrying.AsyncRetrying:
            return retrying.through_outage(
                first=self._retry_delay,
                longest=self._max_retry_delay,
                keep_trying=keep_trying,
                on_retry=on_retry,
            )

        await retrying.call(policy, self._handler, deliveries)

    def _backoff(self) -> float:
        return float(min(self._retry_delay * 2 ** (self._failures - 1), self._max_retry_delay))

    def _delivery(self, message: AbstractIncomingMessage) -> Delivery[T]:
        check_content_type(message.content_type, message.content_encoding)
        headers: dict[str, Any] = dict(message.headers or {})
        check_schema(headers)
        value = self._decode(message)
        return Delivery(
            value,
            message.message_id or generated_message_id(),
            reply=self._replier(message) if self._replier is not None else None,
            headers=headers,
            redelivered=bool(message.redelivered),
        )

    # ---------------------------------------------------------- settlement
    def _gone(self, message: AbstractIncomingMessage) -> None:
        self._settlement.gone(message)

    async def _reject(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Dead-letter ``message`` with ``reason``; requeue it if the copy fails."""
        log.warning(
            "consumer %s: dead-lettering message %s (delivery %s): %s",
            self.name,
            message.message_id,
            message.delivery_tag,
            reason,
        )
        if live_channel(message) is None:
            self._gone(message)  # requeued already: dead-lettered when it comes back
            return
        try:
            await self._dead_letter(message, reason, self._queue.name)
        except Exception as exc:
            log.warning(
                "consumer %s: copy of message %s to the DLX failed (%r); it is requeued "
                "and dead-lettered when it comes back",
                self.name,
                message.message_id,
                exc,
            )
            await self._settle_each([message], ok=False)
            return
        await self._settle_each([message], ok=True)
        await self._refuse(message, reason)

    async def _refuse(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Answer a dead-lettered request (``reply_to``) with ``{"ok": false, "error"}``,
        so its caller learns why instead of timing out."""
        if self._replier is None or not message.reply_to:
            return
        try:
            reply = self._replier(message)
            if reply is not None:
                await reply({"ok": False, "error": reason[:MAX_REASON_LENGTH]})
        except Exception as exc:
            log.warning("consumer %s: could not answer a refused request: %r", self.name, exc)

    async def _settle(self, messages: Sequence[AbstractIncomingMessage], *, ok: bool) -> None:
        """Ack (or nack with requeue) ``messages``: :meth:`Settlement.settle`."""
        await self._settlement.settle(messages, ok=ok)

    async def _settle_each(self, messages: Sequence[AbstractIncomingMessage], *, ok: bool) -> None:
        await self._settlement.settle_each(messages, ok=ok)


def _reason(exc: BaseException) -> str:
    return f"undecodable message: {type(exc).__name__}: {exc}"
