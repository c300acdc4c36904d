"""Publishing on RabbitMQ with confirms: the hot path of :class:`~spane.bus.rabbit.RabbitBus`.

A publication goes to the aiormq channel under aio-pika's robust channel (no
``aio_pika.Message`` per message), every message of a batch is written at once, as one
frame batch (:mod:`spane.bus.rabbit_batch`), and their confirms awaited together under
one deadline. What an outage broke is retried
once the robust connection is back, until the deadline; an unroutable ``mandatory``
message (returned by the broker) is a permanent error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractRobustChannel
from aio_pika.exceptions import AMQPError, PublishError
from aiormq import spec
from aiormq.exceptions import ChannelInvalidStateError

from spane import retrying
from spane.bus import rabbit_batch

log = logging.getLogger("spane.bus.rabbit")

RETRY_PAUSE = 0.2
PERSISTENT = 2
"""AMQP delivery mode of a persistent message."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish on one exchange (by name) of the channel it goes through.

    Built as AMQP properties directly: publishing goes to the aiormq channel under the
    robust one, without an ``aio_pika.Message`` per message (the hot path).
    """

    exchange: str
    routing_key: str
    body: bytes
    properties: spec.Basic.Properties
    mandatory: bool

    @classmethod
    def of(
        cls, exchange: str, routing_key: str, message: aio_pika.Message, mandatory: bool
    ) -> Outgoing:
        return cls(exchange, routing_key, message.body, message.properties, mandatory)


def is_transient(error: BaseException, cancel_requests: int = 0) -> bool:
    """Worth retrying once the connection is back (not an unroutable message).

    A publication cancelled under us (aiormq cancels pending confirms when it closes a
    stuck connection) is transient too, unless this task itself was asked to cancel
    since the publication began (``cancel_requests``: its count of pending cancel
    requests then; an earlier, swallowed one does not count).
    """
    if isinstance(error, PublishError):
        return False
    if isinstance(error, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is not None and task.cancelling() <= cancel_requests
    return isinstance(error, ConnectionError | TimeoutError | RuntimeError | AMQPError)


async def publish_all(
    channel: AbstractRobustChannel,
    outgoing: Sequence[Outgoing],
    timeout: float,
    on_return: Callable[[Outgoing], None] | None = None,
) -> None:
    """Publish everything, confirms awaited together; retry what an outage broke.

    Raises the first permanent error (an unroutable message), or :class:`TimeoutError`
    when some messages are still unconfirmed after ``timeout`` seconds. A retried
    message may reach the broker twice (its first confirm was lost); consumers
    deduplicate by message id. With ``on_return``, an unroutable message is not an
    error: the broker's return of it is handed to ``on_return``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    task = asyncio.current_task()
    cancel_requests = task.cancelling() if task is not None else 0
    pending = list(outgoing)

    async def attempt() -> None:
        results = await _send_all(channel, pending, deadline - loop.time())
        failed: list[Outgoing] = []
        last_error: BaseException | None = None
        for item, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                if on_return is not None and isinstance(result, PublishError):
                    on_return(item)  # returned: no queue is bound to its routing key
                    continue
                if not is_transient(result, cancel_requests):
                    raise result
                failed.append(item)
                last_error = result
        if failed:
            pending[:] = failed  # the next try publishes only what failed
            raise _UnconfirmedError(len(failed), last_error)

    def policy() -> retrying.AsyncRetrying:
        return retrying.until_deadline(
            deadline,
            retry_on=_UnconfirmedError,
            pause=RETRY_PAUSE,
            recover=lambda error: _recovered(channel, deadline, error),
            on_retry=lambda error: log.warning("publishing %s; retrying", error),
            give_up=_timed_out,
        )

    await retrying.call(policy, attempt)


def _timed_out(failure: BaseException | None) -> TimeoutError:
    if isinstance(failure, _UnconfirmedError):
        return TimeoutError(
            f"{failure.count} message(s) not confirmed by RabbitMQ in time "
            f"(last error: {failure.error!r})"
        )
    return TimeoutError(f"not confirmed by RabbitMQ in time ({failure!r})")


class _UnconfirmedError(Exception):
    """Some messages of a publication failed for a transient reason (an outage)."""

    def __init__(self, count: int, error: BaseException | None) -> None:
        super().__init__(f"{count} message(s) failed ({error!r})")
        self.count = count
        self.error = error


async def _send_all(
    channel: AbstractRobustChannel, outgoing: Sequence[Outgoing], timeout: float
) -> list[object]:
    """Publish on the channel under the robust one, confirms awaited together; each
    message's failure in its place. One deadline for all (not a timer per message).

    aiormq raises :class:`PublishError` for a returned (unroutable mandatory) message
    and ``DeliveryError`` for a nack; a closed channel raises ``ChannelInvalidStateError``.
    """
    if channel.is_closed:  # reopening after an outage: the caller's bounded retry waits
        closed = ChannelInvalidStateError(f"{channel} is closed")
        return [closed for _ in outgoing]
    try:
        async with asyncio.timeout(max(timeout, 0.001)):
            try:
                underlay = await channel.get_underlay_channel()  # waits for the connection
            except (AMQPError, RuntimeError) as exc:  # reopened without its channel yet
                return [exc for _ in outgoing]
            if rabbit_batch.supports(underlay):  # one write for the batch
                return await rabbit_batch.publish_batch(underlay, outgoing)
            results = await asyncio.gather(
                *(
                    underlay.basic_publish(
                        item.body,
                        exchange=item.exchange,
                        routing_key=item.routing_key,
                        properties=item.properties,
                        mandatory=item.mandatory,
                    )
                    for item in outgoing
                ),
                return_exceptions=True,
            )
            return list(results)
    except TimeoutError as exc:
        raise TimeoutError(f"{len(outgoing)} message(s) not confirmed by RabbitMQ in time") from exc


async def _recovered(
    channel: AbstractRobustChannel, deadline: float, failure: BaseException | None
) -> None:
    """Before the next try: wait (until the deadline) for the robust channel to be back."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
            await channel.ready()
    except TimeoutError as exc:
        raise TimeoutError(f"{failure}: not published, RabbitMQ unavailable") from exc
