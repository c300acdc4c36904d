"""Which publication failures are retried once the connection is back."""

from __future__ import annotations

import asyncio

import pytest
from aio_pika.exceptions import AMQPConnectionError, DeliveryError, PublishError
from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError
from pamqp.header import ContentHeader

from spane.bus.rabbit_publish import is_transient


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
