"""Reading ``{ns}.dead-letters`` on RabbitMQ, and redriving what was read.

:class:`DeadLetterConsumer` is the :class:`~spane.bus.rabbit_consumer.BatchConsumer`
of the dead-letter queue: every message is turned into a
:class:`~spane.bus.dead_letters.DeadLetter` (that never fails: a message that could not
be decoded anywhere else is exactly what this queue holds, and refusing it here would
send it back to the same queue); the handler stores the batch and the batch is acked
after it returns (redelivered if it raised).

Ids: a copy dead-lettered by SPANE carries its id in a header, so a redelivered copy
(the consumer died between storing and acking) is stored once. A message the broker
dead-lettered has no such id; it gets a fresh one, so that rare redelivery stores it
twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq import spec

from spane.bus.base import BatchHandler, Delivery
from spane.bus.dead_letters import (
    ID_HEADER,
    ORIGIN_EXCHANGE_HEADER,
    ORIGIN_ROUTING_KEY_HEADER,
    DeadLetter,
    json_headers,
)
from spane.bus.rabbit_consumer import (
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    BatchConsumer,
    generated_message_id,
)
from spane.bus.rabbit_publish import PERSISTENT, Outgoing
from spane.bus.topology import Topology

log = logging.getLogger("spane.bus.rabbit")


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], dict):
        return dict(deaths[0])
    return {}


def _death_time(death: dict[str, Any]) -> float | None:
    when = death.get("time")
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def dead_letter_of(message: AbstractIncomingMessage, queue: str, now: float) -> DeadLetter:
    """The entry for a message of the dead-letter queue (``queue``); never raises on
    what the message holds."""
    raw: dict[str, Any] = dict(message.headers or {})
    death = _first_death(raw)
    spane_copy = DEAD_LETTER_REASON_HEADER in raw
    if spane_copy:
        reason = _text(raw.get(DEAD_LETTER_REASON_HEADER))
        died_in = _text(raw.get(DEAD_LETTER_QUEUE_HEADER))
        exchange = _text(raw.get(ORIGIN_EXCHANGE_HEADER))
        routing_key = _text(raw.get(ORIGIN_ROUTING_KEY_HEADER))
        entry_id = _text(raw.get(ID_HEADER)) or uuid.uuid4().hex
    else:
        cause = _text(death.get("reason") or raw.get("x-first-death-reason") or "unknown")
        reason = f"dead-lettered by RabbitMQ: {cause}"
        died_in = _text(death.get("queue") or raw.get("x-first-death-queue"))
        exchange = _text(death.get("exchange") or raw.get("x-first-death-exchange"))
        keys = death.get("routing-keys")
        routing_key = _text(keys[0]) if isinstance(keys, list | tuple) and keys else ""
        entry_id = uuid.uuid4().hex
    count = death.get("count")
    return DeadLetter(
        id=entry_id,
        exchange=exchange,
        routing_key=routing_key,
        queue=died_in or queue,
        reason=reason,
        dead_at=_death_time(death) or now,
        body=bytes(message.body),
        headers=json_headers(raw),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
        priority=message.priority,
        count=count if isinstance(count, int) and count > 0 else 1,
    )


class DeadLetterConsumer(BatchConsumer[DeadLetter]):
    """The consumer of ``{ns}.dead-letters``: every message becomes a delivery."""

    @classmethod
    def on(
        cls,
        channel: AbstractChannel,
        queue: AbstractQueue,
        handler: BatchHandler[DeadLetter],
        prefetch: int,
        retry_delay: float,
        max_retry_delay: float,
        stop_grace: float,
    ) -> DeadLetterConsumer:
        return cls(
            name="dead-letters",
            channel=channel,
            queue=queue,
            handler=handler,
            decode=unusable_decoder,
            prefetch=prefetch,
            dead_letter=never_dead_letter,
            retry_delay=retry_delay,
            max_retry_delay=max_retry_delay,
            stop_grace=stop_grace,
        )

    def _delivery(self, message: AbstractIncomingMessage) -> Delivery[DeadLetter]:
        entry = dead_letter_of(message, self._queue.name, time.time())
        return Delivery(entry, message.message_id or generated_message_id())


def unusable_decoder(message: AbstractIncomingMessage) -> DeadLetter:
    """Never called: :class:`DeadLetterConsumer` builds its deliveries itself."""
    raise AssertionError("DeadLetterConsumer does not decode")


async def never_dead_letter(message: AbstractIncomingMessage, reason: str, queue: str) -> None:
    """A dead letter that cannot be read is left in its queue (requeued), never copied
    to the exchange that feeds this very queue."""
    raise RuntimeError(f"not re-dead-lettering a message of {queue}: {reason}")


def redrive_outgoing(entry: DeadLetter) -> Outgoing:
    """The message a redrive publishes: the original body, properties and headers (minus
    the dead-lettering ones) to the original exchange and routing key, mandatory (an
    unroutable redrive raises instead of vanishing)."""
    properties = spec.Basic.Properties(
        content_type=entry.content_type,
        content_encoding=entry.content_encoding,
        headers=entry.redrive_headers(),
        delivery_mode=PERSISTENT,
        priority=entry.priority,
        correlation_id=entry.correlation_id,
        message_id=entry.message_id,
        message_type=entry.type,
        app_id=entry.app_id,
    )
    return Outgoing(entry.exchange, entry.routing_key, entry.body, properties, True)


def redrive_problem(top: Topology, entry: DeadLetter) -> str | None:
    """Why ``entry`` cannot be redriven on this namespace's topology (None: it can): only
    SPANE's exchanges (and the default one) are published to, never one of another
    namespace or application (publishing to a missing exchange closes the channel)."""
    ours = {top.tasks_exchange, top.orchestrator_exchange, top.triggers_exchange}
    ours |= {top.events_exchange, top.cancellations_exchange, ""}
    if entry.exchange in ours:
        return None
    return (
        f"dead letter {entry.id}: exchange {entry.exchange!r} is not one of namespace "
        f"{top.namespace!r}; cannot redrive it"
    )


def unroutable(entry: DeadLetter) -> str:
    return (
        f"dead letter {entry.id}: no queue takes routing key {entry.routing_key!r} on "
        f"exchange {entry.exchange!r}"
    )
