"""The RabbitMQ batch consumer's settlement rules, on fake deliveries (no broker).

Every delivery taken ends processed (acked), dead-lettered (copied to the DLX with its
reason, then acked on its own) or redelivered (nacked with requeue, or left to the broker
when its channel has closed); ``multiple=True`` never covers a delivery whose fate is
unknown. The same rules run against RabbitMQ in tests/integration/test_poison_messages.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelInvalidStateError

from spane.bus.base import Delivery
from spane.bus.rabbit_consumer import GENERATED_ID_PREFIX, BatchConsumer
from spane.bus.rabbit_decoders import trigger_decoder

Frame = tuple[str, int, int, bool]
"""(ack | nack | reject, channel number, delivery tag, multiple)."""


class FakeChannel:
    def __init__(self, number: int, frames: list[Frame]) -> None:
        self.number = number
        self.frames = frames
        self.is_closed = False

    async def close(self) -> None:
        self.is_closed = True


class FakeMessage:
    """What the consumer reads of an ``aio_pika.IncomingMessage``."""

    def __init__(
        self,
        channel: FakeChannel,
        tag: int,
        body: bytes,
        *,
        message_id: str | None = None,
        content_type: str | None = "application/json",
        redelivered: bool = False,
    ) -> None:
        self._channel = channel
        self.delivery_tag = tag
        self.body = body
        self.message_id = message_id
        self.content_type = content_type
        self.content_encoding: str | None = None
        self.headers: dict[str, Any] = {}
        self.redelivered = redelivered
        self.routing_key = "order.created"
        self.reply_to: str | None = None
        self.correlation_id: str | None = None

    @property
    def channel(self) -> FakeChannel:
        if self._channel.is_closed:
            raise ChannelInvalidStateError
        return self._channel

    async def ack(self, multiple: bool = False) -> None:
        self.channel.frames.append(("ack", self._channel.number, self.delivery_tag, multiple))

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        assert requeue
        self.channel.frames.append(("nack", self._channel.number, self.delivery_tag, multiple))

    async def reject(self, requeue: bool = False) -> None:
        self.channel.frames.append(("reject", self._channel.number, self.delivery_tag, False))


class FakeQueue:
    name = "spanetest.triggers"

    async def consume(self, callback: Any) -> str:
        return "ctag"

    async def cancel(self, tag: str) -> None:
        return None


class Harness:
    def __init__(self, *, fail_handler: bool = False, fail_dead_letter: bool = False) -> None:
        self.frames: list[Frame] = []
        self.channel = FakeChannel(1, self.frames)
        self.batches: list[list[Delivery[Any]]] = []
        self.dead: list[tuple[str, str]] = []
        self.fail_handler = fail_handler
        self.fail_dead_letter = fail_dead_letter
        self.consumer: BatchConsumer[Any] = BatchConsumer(
            name="test",
            channel=cast(AbstractChannel, self.channel),
            queue=cast(AbstractQueue, FakeQueue()),
            handler=self.handle,
            decode=trigger_decoder(),
            prefetch=100,
            dead_letter=self.dead_letter,
            retry_delay=0.0,
            stop_grace=1.0,
        )

    async def handle(self, batch: Sequence[Delivery[Any]]) -> None:
        self.batches.append(list(batch))
        if self.fail_handler:
            raise RuntimeError("handler failed on purpose")

    async def dead_letter(self, message: AbstractIncomingMessage, reason: str, queue: str) -> None:
        if self.fail_dead_letter:
            raise TimeoutError("DLX unavailable")
        self.dead.append((str(message.message_id), reason))

    async def run(self, messages: Sequence[FakeMessage]) -> None:
        """Buffer ``messages`` before the runner starts, so they make one batch."""
        for message in messages:
            await self.consumer._on_message(cast(AbstractIncomingMessage, message))
        await self.consumer.start()
        for _ in range(50):
            await asyncio.sleep(0)
        await self.consumer.stop()


def good(channel: FakeChannel, tag: int) -> FakeMessage:
    return FakeMessage(channel, tag, json.dumps({"n": tag}).encode(), message_id=f"good-{tag}")


async def test_poison_in_a_batch_is_dead_lettered_alone_and_the_rest_acked() -> None:
    h = Harness()
    ch = h.channel
    deep = b"[" * 100_000 + b"]" * 100_000
    messages = [
        good(ch, 1),
        FakeMessage(ch, 2, deep, message_id="deep"),
        good(ch, 3),
        FakeMessage(ch, 4, b'{"n": ' + b"9" * 5000 + b"}", message_id="huge"),
        FakeMessage(ch, 5, b"{}", message_id="text", content_type="text/plain"),
        good(ch, 6),
    ]
    await h.run(messages)
    assert [d.message_id for b in h.batches for d in b] == ["good-1", "good-3", "good-6"]
    assert [m for m, _ in h.dead] == ["deep", "huge", "text"]
    reasons = dict(h.dead)
    assert "nested deeper than 64 levels" in reasons["deep"]
    assert "signed 64-bit" in reasons["huge"]
    assert "unsupported content type 'text/plain'" in reasons["text"]
    # each dead letter acked on its own, then one multiple ack over settled tags only
    assert h.frames == [
        ("ack", 1, 2, False),
        ("ack", 1, 4, False),
        ("ack", 1, 5, False),
        ("ack", 1, 6, True),
    ]


async def test_a_decoder_raising_anything_dead_letters_instead_of_abandoning_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = Harness()
    ch = h.channel

    def explode(message: AbstractIncomingMessage) -> Any:
        if message.message_id == "boom":
            raise RecursionError("maximum recursion depth exceeded")
        return json.loads(message.body)

    h.consumer._decode = explode
    await h.run([good(ch, 1), FakeMessage(ch, 2, b"{}", message_id="boom"), good(ch, 3)])
    assert h.dead == [
        ("boom", "undecodable message: RecursionError: maximum recursion depth exceeded")
    ]
    assert [d.message_id for b in h.batches for d in b] == ["good-1", "good-3"]
    assert h.frames == [("ack", 1, 2, False), ("ack", 1, 3, True)]


async def test_a_failed_dead_letter_copy_requeues_that_delivery_only() -> None:
    h = Harness(fail_dead_letter=True)
    ch = h.channel
    await h.run([good(ch, 1), FakeMessage(ch, 2, b"not json", message_id="bad"), good(ch, 3)])
    # the bad one goes back (dead-lettered with its reason when it returns); it is
    # settled by then, so one multiple ack covers the good ones
    assert h.frames == [("nack", 1, 2, False), ("ack", 1, 3, True)]


async def test_a_failed_handler_requeues_the_accepted_deliveries() -> None:
    h = Harness(fail_handler=True)
    ch = h.channel
    await h.run([good(ch, 1), FakeMessage(ch, 2, b"NaN", message_id="nan"), good(ch, 3)])
    assert [m for m, _ in h.dead] == ["nan"]
    assert h.frames == [("ack", 1, 2, False), ("nack", 1, 3, True)]


async def test_deliveries_of_a_closed_channel_are_skipped_without_breaking_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    old = FakeChannel(1, h.frames)
    new = FakeChannel(2, h.frames)
    h.channel = new
    messages = [good(old, 7), good(old, 8), good(new, 1), good(new, 2)]
    old.is_closed = True  # the connection was lost while these waited in the buffer
    with caplog.at_level(logging.DEBUG, logger="spane.bus.rabbit"):
        await h.run(messages)
    assert [d.message_id for b in h.batches for d in b] == ["good-1", "good-2"]
    assert h.frames == [("ack", 2, 2, True)]  # nothing sent on the closed channel
    assert "closed channel" in caplog.text
    assert "unexpected failure" not in caplog.text


async def test_a_channel_closing_during_the_handler_leaves_its_deliveries_to_the_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    old = h.channel
    new = FakeChannel(2, h.frames)

    async def handle(batch: Sequence[Delivery[Any]]) -> None:
        h.batches.append(list(batch))
        old.is_closed = True  # lost while the batch was held

    h.consumer._handler = handle
    with caplog.at_level(logging.DEBUG, logger="spane.bus.rabbit"):
        await h.run([good(old, 1), good(old, 2), good(new, 1)])
    assert len(h.batches) == 1
    assert h.frames == [("ack", 2, 1, False)]
    assert "unexpected failure" not in caplog.text


async def test_an_unsettled_earlier_delivery_is_never_covered_by_a_multiple_ack() -> None:
    h = Harness()
    ch = h.channel
    stuck = good(ch, 1)

    async def broken_ack(multiple: bool = False) -> None:
        raise ConnectionResetError("ack lost")

    async def broken_nack(multiple: bool = False, requeue: bool = True) -> None:
        raise ConnectionResetError("nack lost")

    stuck.ack = broken_ack  # type: ignore[method-assign]
    stuck.nack = broken_nack  # type: ignore[method-assign]
    h.consumer._prefetch = 1
    await h.run([stuck, good(ch, 2), good(ch, 3)])
    assert [d.message_id for b in h.batches for d in b] == ["good-1", "good-2", "good-3"]
    # tag 1 could not be settled: tags 2 and 3 are acked singly, never with multiple
    assert h.frames == [("ack", 1, 2, False), ("ack", 1, 3, False)]


async def test_an_unexpected_failure_requeues_the_batch_one_by_one() -> None:
    h = Harness()
    ch = h.channel

    async def settle_fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in settlement")

    h.consumer._settle = settle_fails  # type: ignore[method-assign]
    await h.run([good(ch, 1), good(ch, 2)])
    assert h.frames == [("nack", 1, 1, False), ("nack", 1, 2, False)]


async def test_a_message_without_an_id_gets_a_fresh_one_per_delivery() -> None:
    h = Harness()
    ch = h.channel
    body = b'{"order": 1}'
    await h.run([FakeMessage(ch, 1, body), FakeMessage(ch, 2, body), FakeMessage(ch, 3, body)])
    ids = [d.message_id for b in h.batches for d in b]
    assert len(set(ids)) == 3
    assert all(i.startswith(GENERATED_ID_PREFIX) for i in ids)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "application/cloudevents+json",
        "Application/JSON",
    ],
)
async def test_accepted_content_types(content_type: str | None) -> None:
    h = Harness()
    await h.run([FakeMessage(h.channel, 1, b"{}", message_id="m", content_type=content_type)])
    assert not h.dead
    assert len(h.batches) == 1


class RedisDownError(Exception):
    """Stands for ``redis.exceptions.ConnectionError`` (classified by module and name)."""


RedisDownError.__module__ = "redis.exceptions"
RedisDownError.__name__ = RedisDownError.__qualname__ = "ConnectionError"


async def test_an_outage_keeps_the_batch_and_retries_until_the_server_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler failing because Redis (or MongoDB, or the broker) is unreachable does not
    requeue: requeues count towards the delivery limit and would dead-letter good
    messages during a long outage. The batch is kept and handled again; one ack."""
    h = Harness()
    ch = h.channel
    failures = iter([RedisDownError("Error 111 connecting"), TimeoutError("read timed out")])

    async def flaky(batch: Sequence[Delivery[Any]]) -> None:
        h.batches.append(list(batch))
        failure = next(failures, None)
        if failure is not None:
            raise failure

    h.consumer._handler = flaky
    with caplog.at_level(logging.WARNING):
        await h.run([good(ch, 1), good(ch, 2)])
    assert len(h.batches) == 3  # two outage failures, then processed
    assert [d.message_id for d in h.batches[-1]] == ["good-1", "good-2"]
    assert h.frames == [("ack", 1, 2, True)]
    assert "a server is unreachable (ConnectionError" in caplog.text


async def test_a_non_transient_failure_is_still_requeued_not_retried_in_place() -> None:
    h = Harness(fail_handler=True)
    await h.run([good(h.channel, 1)])
    assert len(h.batches) == 1
    assert h.frames == [("nack", 1, 1, False)]
