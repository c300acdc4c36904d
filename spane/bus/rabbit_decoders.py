"""Decoders and batch adapters of the RabbitMQ subscriptions, and the dead-letter copy.

The :data:`~spane.bus.rabbit_consumer.Decoder` of each queue turns a delivery into the
value its handler gets (raising :class:`~spane.errors.InvalidMessageError` dead-letters
it); the batch adapters call an event or cancellation handler once per item, logging a
failure instead of redelivering; :func:`dead_letter_copy` is what SPANE publishes to
``{ns}.dlx`` for a message it refuses.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from spane.bus.base import BatchHandler, CancelHandler, Delivery, EventHandler, TriggerEvent
from spane.bus.codec import DEFAULT_MAX_MESSAGE_BYTES, decode_event, decode_trigger_body
from spane.bus.dead_letters import ID_HEADER, ORIGIN_EXCHANGE_HEADER, ORIGIN_ROUTING_KEY_HEADER
from spane.bus.rabbit_consumer import (
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    MAX_REASON_LENGTH,
    Decoder,
)
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
from spane.schemas.events import LifecycleEvent

log = logging.getLogger("spane.bus.rabbit")

T = TypeVar("T")


def body_decoder(decode: Callable[[bytes], T]) -> Decoder[T]:
    """A :data:`Decoder` that looks at the body only."""

    def decoder(message: AbstractIncomingMessage) -> T:
        return decode(message.body)

    return decoder


def trigger_decoder(max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> Decoder[TriggerEvent]:
    """Any JSON body within the value limits; the routing key is the event type."""

    def decode(message: AbstractIncomingMessage) -> TriggerEvent:
        body = decode_trigger_body(message.body, max_bytes=max_bytes)
        return TriggerEvent(message.routing_key or "", body)

    return decode


decode_trigger = trigger_decoder()
"""The trigger decoder with the default size limit."""


def decode_routed_event(
    message: AbstractIncomingMessage, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> tuple[str, LifecycleEvent]:
    return message.routing_key or "", decode_event(message.body, max_bytes=max_bytes)


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
    headers[ORIGIN_EXCHANGE_HEADER] = message.exchange or ""  # where a redrive sends it
    headers[ORIGIN_ROUTING_KEY_HEADER] = message.routing_key or ""
    headers[ID_HEADER] = uuid.uuid4().hex  # a redelivered copy is stored once
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
