"""Which publication failures are retried once the connection is back."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aio_pika.exceptions import AMQPConnectionError, DeliveryError, PublishError
from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError
from pamqp.header import ContentHeader

from spane.bus.rabbit_publish import Outgoing, is_transient, publish_all


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset"),
        TimeoutError("late"),
        ChannelInvalidStateError("closed"),
        AMQPConnectionError("gone"),
        DeliveryError(None, spec.Basic.Nack()),  # a nack: published again
    ],
)
def test_outage_errors_are_transient(error: BaseException) -> None:
    assert is_transient(error)


def test_an_unroutable_message_is_permanent() -> None:
    returned = spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="x")
    message = DeliveredMessage(returned, ContentHeader(), b"", None)  # type: ignore[arg-type]
    assert not is_transient(PublishError(message, returned))
    assert not is_transient(ValueError("a bug, not an outage"))


async def test_a_publication_cancelled_under_us_is_transient_but_our_own_cancel_is_not() -> None:
    assert is_transient(asyncio.CancelledError())  # aiormq closed a stuck connection

    seen: list[bool] = []

    async def cancelled_while_classifying() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            seen.append(is_transient(exc))
            raise

    task = asyncio.ensure_future(cancelled_while_classifying())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


async def test_an_earlier_swallowed_cancel_does_not_make_a_broken_publication_permanent() -> None:
    async def classify() -> bool:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # requested and then swallowed, as a suppress() around a wait does
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        baseline = task.cancelling()
        return is_transient(asyncio.CancelledError(), baseline)

    assert await asyncio.ensure_future(classify())


class _ReopeningChannel:
    """A robust channel whose underlying channel is missing on the first look (its
    reopening failed once), then there."""

    is_closed = False

    def __init__(self) -> None:
        self.looks = 0

    async def get_underlay_channel(self) -> Any:
        self.looks += 1
        if self.looks == 1:
            raise ChannelInvalidStateError("Channel was not opened")
        return self

    async def basic_publish(self, body: bytes, **_: Any) -> None:
        return None

    async def ready(self) -> None:
        return None


async def test_a_channel_not_reopened_yet_is_retried_within_the_deadline() -> None:
    channel = _ReopeningChannel()
    outgoing = Outgoing("x", "k", b"{}", spec.Basic.Properties(), mandatory=True)

    await publish_all(channel, [outgoing], timeout=5.0)  # type: ignore[arg-type]

    assert channel.looks == 2


def test_connections_use_a_short_heartbeat_unless_the_url_names_one() -> None:
    from spane.bus.rabbit import HEARTBEAT, with_heartbeat

    assert with_heartbeat("amqp://h/") == f"amqp://h/?heartbeat={HEARTBEAT}"
    assert with_heartbeat("amqp://h/?a=1") == f"amqp://h/?a=1&heartbeat={HEARTBEAT}"
    assert with_heartbeat("amqp://h/?heartbeat=3") == "amqp://h/?heartbeat=3"
