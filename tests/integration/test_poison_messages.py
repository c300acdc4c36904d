"""Poison messages never take good ones with them (DESIGN §5), on a real RabbitMQ.

Every kind of body the decoders refuse -- nesting that makes Python's json raise
RecursionError, integers of 5,000 digits (ValueError) or past 64 bits, NaN/Infinity,
invalid UTF-8, a lone surrogate, a wrong content type or encoding, a wrong schema, an
oversized body, no JSON at all -- is published in between good messages on the trigger
queue and the orchestrator inbox. Every good message must reach the handler (and be
acked: the queue is empty afterwards), every bad one must land in the dead-letter queue
once, with its reason in the ``spane-dead-letter-reason`` header and in the log.

The buses run with default settings (size limits, delivery limit); each test has its own
namespace (``spanetest-<uuid8>``), deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aiormq import spec

from bench.deploy import delete_rabbit_namespace
from spane.bus import codec
from spane.bus.base import Delivery
from spane.bus.rabbit import DEAD_LETTER_QUEUE_HEADER, DEAD_LETTER_REASON_HEADER, RabbitBus
from spane.bus.rabbit_consumer import GENERATED_ID_PREFIX
from spane.bus.topology import Topology
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
from spane.schemas.messages import SignalCommand
from tests.proxy import TcpProxy

pytestmark = pytest.mark.real

WAIT = 20.0
ROUTING_KEY = "order.created"
DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE_INT = b"9" * 5000


@dataclass(frozen=True)
class Poison:
    name: str
    body: bytes
    reason: str
    """Expected in the dead-letter reason header."""
    content_type: str | None = codec.JSON_CONTENT_TYPE
    content_encoding: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)


def trigger_poison() -> list[Poison]:
    oversized = json.dumps("x" * DEFAULT_MAX_VALUE_BYTES).encode()
    return [
        Poison("deep", DEEP, "nested deeper than 64 levels"),
        Poison("deep-65", b"[" * 65 + b"]" * 65, "nested deeper than 64 levels"),
        Poison("huge-int", b'{"n": ' + HUGE_INT + b"}", "signed 64-bit"),
        Poison("int-past-64-bits", b'{"n": 9223372036854775808}', "signed 64-bit"),
        Poison("negative-past-64-bits", b"[-9223372036854775809]", "signed 64-bit"),
        Poison("nan", b'{"x": NaN}', "non-finite"),
        Poison("infinity", b'{"x": -Infinity}', "non-finite"),
        Poison("overflow", b'{"x": 1e400}', "non-finite"),
        Poison("invalid-utf8", b'{"x": "\xff\xfe"}', "Invalid JSON"),
        Poison("lone-surrogate", b'{"x": "\\ud800"}', "Invalid JSON"),
        Poison("text-plain", b'{"n": 1}', "unsupported content type", content_type="text/plain"),
        Poison("gzip", b'{"n": 1}', "unsupported content encoding", content_encoding="gzip"),
        Poison("latin1", b'{"n": 1}', "charset", content_type="application/json; charset=latin-1"),
        Poison("schema", b'{"n": 1}', "unsupported spane-schema", headers={"spane-schema": 99}),
        Poison("oversized", oversized, f"over the limit of {DEFAULT_MAX_VALUE_BYTES} bytes"),
        Poison("not-json", b"order 42 created", "Invalid JSON"),
        Poison("empty", b"", "Invalid JSON"),
    ]


def _signal(data: bytes) -> bytes:
    return b'{"command": "signal", "execution_id": "e1", "name": "go", "data": ' + data + b"}"


def inbox_poison() -> list[Poison]:
    limit = codec.DEFAULT_MAX_MESSAGE_BYTES
    oversized = _signal(json.dumps("x" * limit).encode())
    good = codec.encode_inbox(SignalCommand(execution_id="e1", name="go"))
    return [
        Poison("deep", _signal(DEEP), f"nested deeper than {codec.MAX_MESSAGE_DEPTH} levels"),
        Poison("huge-int", _signal(HUGE_INT), "signed 64-bit"),
        Poison("int-past-64-bits", _signal(b"18446744073709551616"), "signed 64-bit"),
        Poison("nan", _signal(b"NaN"), "non-finite"),
        Poison("infinity", _signal(b"Infinity"), "non-finite"),
        Poison("overflow", _signal(b"[1.5e999]"), "non-finite"),
        Poison("invalid-utf8", _signal(b'"\xc3\x28"'), "Invalid JSON"),
        Poison("text-plain", good, "unsupported content type", content_type="text/plain"),
        Poison("octet-stream", good, "unsupported content type", "application/octet-stream"),
        Poison("gzip", good, "unsupported content encoding", content_encoding="gzip"),
        Poison("wrong-kind", b'{"kind": "surprise"}', "message needs 'kind'"),
        Poison("missing-field", b'{"command": "signal", "execution_id": "e1"}', "name: Field"),
        Poison("wrong-type", b'{"command": "pause", "execution_id": 7}', "execution_id"),
        Poison("schema", good, "unsupported spane-schema", headers={"spane-schema": 2}),
        Poison("oversized", oversized, f"over the limit of {limit} bytes"),
        Poison("not-json", b"\x00 not json", "Invalid JSON"),
    ]


# ----------------------------------------------------------------------------- helpers


class WithoutMessageId(spec.Basic.Properties):
    """Properties an outside producer sends without ``message_id`` (aiormq would add one)."""

    @property
    def message_id(self) -> None:
        return None

    @message_id.setter
    def message_id(self, value: object) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[Delivery[Any]]] = []

    async def __call__(self, batch: Sequence[Delivery[Any]]) -> None:
        self.batches.append(list(batch))

    @property
    def deliveries(self) -> list[Delivery[Any]]:
        return [d for batch in self.batches for d in batch]


async def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def drain_dead_letters(
    channel: AbstractChannel, namespace: str, count: int, settle: float = 0.5
) -> list[AbstractIncomingMessage]:
    """Every dead letter: at least ``count``, then whatever else arrives within ``settle``."""
    queue = await channel.get_queue(Topology(namespace).dead_letter_queue, ensure=False)
    found: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + WAIT
    quiet_until: float | None = None
    while time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            found.append(message)
            continue
        if len(found) >= count:
            quiet_until = quiet_until or time.monotonic() + settle
            if time.monotonic() >= quiet_until:
                break
        await asyncio.sleep(0.05)
    return found


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    result = queue.declaration_result
    return int(result.message_count or 0)


def message(item: Poison, message_id: str) -> aio_pika.Message:
    return aio_pika.Message(
        item.body,
        message_id=message_id,
        content_type=item.content_type,
        content_encoding=item.content_encoding,
        headers=item.headers or None,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def check_dead_letters(
    dead: list[AbstractIncomingMessage], poison: dict[str, Poison], queue: str
) -> None:
    by_id: dict[str, AbstractIncomingMessage] = {}
    for letter in dead:
        assert letter.message_id not in by_id, f"{letter.message_id} dead-lettered twice"
        by_id[str(letter.message_id)] = letter
    assert set(by_id) == set(poison)
    for message_id, item in poison.items():
        letter = by_id[message_id]
        reason = str(letter.headers[DEAD_LETTER_REASON_HEADER])
        assert item.reason in reason, f"{item.name}: {reason!r}"
        assert letter.headers[DEAD_LETTER_QUEUE_HEADER] == queue
        assert letter.body == item.body
        assert letter.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
async def namespace(amqp_url: str) -> AsyncIterator[str]:
    name = f"spanetest-{uuid.uuid4().hex[:8]}"
    yield name
    await delete_rabbit_namespace(amqp_url, name, ())


@pytest.fixture
async def rabbit(
    amqp_url: str, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[RabbitBus]:
    """A RabbitBus with default settings (limits, delivery limit, retry delays)."""
    bus = RabbitBus(amqp_url, namespace=namespace, connection_name=request.node.name)
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
async def raw_channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": "raw"})
    async with connection:
        yield await connection.channel()


# ------------------------------------------------------------------------------- tests


async def test_poison_triggers_are_dead_lettered_and_good_ones_all_processed(
    rabbit: RabbitBus,
    raw_channel: AbstractChannel,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="spane.bus.rabbit")
    declare = await rabbit.consume_triggers(Recorder(), prefetch=1)  # declares the queue
    await declare.stop()
    exchange = await raw_channel.get_exchange(rabbit.topology.triggers_exchange)
    poison = {f"bad-{item.name}": item for item in trigger_poison()}
    good: dict[str, Any] = {}
    variants = [codec.JSON_CONTENT_TYPE, None, codec.CLOUDEVENTS_CONTENT_TYPE]
    for round_ in range(3):  # good ones around and between every poison, three times over
        for index, (message_id, item) in enumerate(poison.items()):
            good_id = f"good-{round_}-{index}"
            body = {"n": index, "round": round_, "big": 2**63 - 1, "ok": 1.5e300}
            good[good_id] = body
            content_type = variants[index % len(variants)]
            await exchange.publish(
                aio_pika.Message(
                    json.dumps(body).encode(), message_id=good_id, content_type=content_type
                ),
                ROUTING_KEY,
            )
            if round_ == 1:
                await exchange.publish(message(item, message_id), ROUTING_KEY)
    # two identical events without a message id are two events
    twin = json.dumps({"twin": True}).encode()
    underlay = await raw_channel.get_underlay_channel()
    for _ in range(2):
        await underlay.basic_publish(
            twin,
            exchange=rabbit.topology.triggers_exchange,
            routing_key=ROUTING_KEY,
            properties=WithoutMessageId(content_type=codec.JSON_CONTENT_TYPE),
        )

    handler = Recorder()
    sub = await rabbit.consume_triggers(handler, prefetch=32)
    await eventually(lambda: len(handler.deliveries) >= len(good) + 2, "every good trigger")
    dead = await drain_dead_letters(raw_channel, namespace, len(poison))
    await asyncio.sleep(0.2)
    await sub.stop()

    with_ids = [d for d in handler.deliveries if not d.message_id.startswith(GENERATED_ID_PREFIX)]
    assert sorted(d.message_id for d in with_ids) == sorted(good)  # each once, none lost
    assert all(d.message.body == good[d.message_id] for d in with_ids)
    assert all(d.message.routing_key == ROUTING_KEY for d in with_ids)
    assert not any(d.redelivered for d in handler.deliveries)
    twins = [d for d in handler.deliveries if d.message.body == {"twin": True}]
    assert len(twins) == 2
    assert twins[0].message_id != twins[1].message_id
    assert max(len(batch) for batch in handler.batches) > 1  # poison shared batches with good
    check_dead_letters(dead, poison, rabbit.topology.triggers_queue)
    assert await queue_depth(raw_channel, rabbit.topology.triggers_queue) == 0
    for message_id, item in poison.items():
        assert f"dead-lettering message {message_id}" in caplog.text, item.name
    assert "unexpected failure" not in caplog.text


async def test_poison_inbox_messages_are_dead_lettered_and_good_ones_all_processed(
    rabbit: RabbitBus,
    raw_channel: AbstractChannel,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="spane.bus.rabbit")
    exchange = await raw_channel.get_exchange(rabbit.topology.orchestrator_exchange)
    poison = {f"bad-{item.name}": item for item in inbox_poison()}
    good: dict[str, SignalCommand] = {}
    for index, (message_id, item) in enumerate(poison.items()):
        for half in range(2):
            good_id = f"good-{index}-{half}"
            command = SignalCommand(
                execution_id=f"e{index}", name="go", data={"half": half, "n": -(2**63)}
            )
            good[good_id] = command
            await exchange.publish(
                aio_pika.Message(
                    codec.encode_inbox(command),
                    message_id=good_id,
                    content_type=None if index % 2 else codec.JSON_CONTENT_TYPE,
                    headers={codec.SCHEMA_HEADER: codec.SCHEMA_VERSION},
                ),
                "",
            )
            if half == 0:
                await exchange.publish(message(item, message_id), "")

    handler = Recorder()
    sub = await rabbit.consume_inbox(handler, prefetch=16)
    await eventually(lambda: len(handler.deliveries) >= len(good), "every good inbox message")
    dead = await drain_dead_letters(raw_channel, namespace, len(poison))
    await asyncio.sleep(0.2)
    await sub.stop()

    assert sorted(d.message_id for d in handler.deliveries) == sorted(good)
    assert all(d.message == good[d.message_id] for d in handler.deliveries)
    assert not any(d.redelivered for d in handler.deliveries)
    assert max(len(batch) for batch in handler.batches) > 1
    check_dead_letters(dead, poison, rabbit.topology.orchestrator_queue)
    assert await queue_depth(raw_channel, rabbit.topology.orchestrator_queue) == 0
    for message_id in poison:
        assert f"dead-lettering message {message_id}" in caplog.text
    assert "unexpected failure" not in caplog.text


async def test_task_results_with_values_json_cannot_carry_are_dead_lettered(
    rabbit: RabbitBus, raw_channel: AbstractChannel, namespace: str
) -> None:
    """A worker's result is an inbox message too: an output past 64-bit integers or NaN
    (which Python's json writes) is refused with a reason, the good results get through."""
    exchange = await raw_channel.get_exchange(rabbit.topology.orchestrator_exchange)
    result: dict[str, Any] = {"kind": "task_result", "task_id": "e1:a:1", "execution_id": "e1"}
    result |= {"node_id": "a", "attempt": 1, "ok": True}
    bodies = {
        "good-1": json.dumps({**result, "output": {"n": 1}}).encode(),
        "bad-nan": json.dumps({**result, "output": float("nan")}).encode(),
        "good-2": json.dumps({**result, "output": [2**63 - 1]}).encode(),
        "bad-big": json.dumps({**result, "output": [2**64]}).encode(),
        "good-3": json.dumps({**result, "output": None}).encode(),
    }
    for message_id, body in bodies.items():
        await exchange.publish(aio_pika.Message(body, message_id=message_id), "")
    handler = Recorder()
    sub = await rabbit.consume_inbox(handler, prefetch=8)
    await eventually(lambda: len(handler.deliveries) >= 3, "the good results")
    dead = await drain_dead_letters(raw_channel, namespace, 2)
    await sub.stop()
    assert sorted(d.message_id for d in handler.deliveries) == ["good-1", "good-2", "good-3"]
    reasons = {m.message_id: str(m.headers[DEAD_LETTER_REASON_HEADER]) for m in dead}
    assert set(reasons) == {"bad-nan", "bad-big"}
    assert "number at .output is nan" in reasons["bad-nan"]
    assert "integer at .output[0]" in reasons["bad-big"]


async def test_a_refused_request_is_answered_with_the_reason(
    rabbit: RabbitBus, raw_channel: AbstractChannel, namespace: str
) -> None:
    handler = Recorder()
    sub = await rabbit.consume_inbox(handler, prefetch=8)
    reply = await rabbit.request(SignalCommand(execution_id="e1", name="go", data=2**70), 10)
    dead = await drain_dead_letters(raw_channel, namespace, 1)
    await sub.stop()
    assert reply["ok"] is False
    assert "signed 64-bit" in reply["error"]
    assert handler.deliveries == []
    assert len(dead) == 1


async def test_publish_trigger_refuses_what_json_cannot_carry(rabbit: RabbitBus) -> None:
    from spane.errors import InvalidMessageError

    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    for body, reason in [
        ({"x": float("nan")}, "non-finite"),
        ({"x": 2**70}, "signed 64-bit"),
        (deep, "nested deeper than 64 levels"),
        ("x" * (DEFAULT_MAX_VALUE_BYTES + 1), "over the limit"),
        ({"x": "\ud800"}, "lone surrogate"),
        ({"x": {1, 2}}, "not JSON"),
    ]:
        with pytest.raises(InvalidMessageError, match=reason):
            await rabbit.publish_trigger(ROUTING_KEY, body)


# ---------------------------------------------------------------------- connection loss


@pytest.mark.slow
async def test_a_batch_held_across_a_connection_loss_loses_nothing(
    amqp_url: str,
    namespace: str,
    raw_channel: AbstractChannel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cut the connection while the handler holds a batch and more deliveries wait in the
    consumer's buffer: the held batch's acks and the waiting deliveries belong to a closed
    channel. They are skipped (the broker redelivers them), the batches go on, every
    message is processed, nothing is acked that was not settled, a poison message among
    them is dead-lettered once, and the queue ends empty."""
    caplog.set_level(logging.DEBUG, logger="spane.bus.rabbit")
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    port = await proxy.start()
    proxied = f"amqp://{parts.username}:{parts.password}@127.0.0.1:{port}{parts.path or '/'}"
    bus = RabbitBus(
        proxied + "?reconnect_interval=0.2",
        namespace=namespace,
        connection_name="held-batch-outage",
        retry_delay=0.01,
    )
    held, release = asyncio.Event(), asyncio.Event()
    batches: list[list[str]] = []
    processed: set[str] = set()  # ids of batches whose handler returned

    async def handler(batch: Sequence[Delivery[Any]]) -> None:
        batches.append([d.message_id for d in batch])
        if len(batches) == 1:
            held.set()
            await release.wait()
        processed.update(d.message_id for d in batch)

    try:
        await bus.connect()
        sub = await bus.consume_triggers(handler, prefetch=10)
        exchange = await raw_channel.get_exchange(bus.topology.triggers_exchange)

        async def publish(message_id: str, body: bytes = b'{"ok": true}') -> None:
            await exchange.publish(aio_pika.Message(body, message_id=message_id), ROUTING_KEY)

        await publish("m1")
        await asyncio.wait_for(held.wait(), WAIT)
        for message_id in ("m2", "m3", "m4"):
            await publish(message_id)
        await publish("poison", b'{"x": NaN}')
        await asyncio.sleep(0.5)  # they wait in the consumer's buffer, on this channel
        proxy.cut()
        await eventually(lambda: "reconnect" in caplog.text.lower() or bus.connected, "recovery")
        await asyncio.sleep(1.5)  # reconnected; the broker redelivers on the new channel
        release.set()
        for message_id in ("m5", "m6"):
            await publish(message_id)
        everything = {"m1", "m2", "m3", "m4", "m5", "m6"}
        await eventually(lambda: everything <= processed, "every message, after the outage")
        dead = await drain_dead_letters(raw_channel, namespace, 1)
        await asyncio.sleep(0.3)
        await sub.stop()
    finally:
        release.set()
        await bus.close()
        await proxy.close()

    assert processed == everything
    assert [m.message_id for m in dead] == ["poison"]  # once: its old delivery was skipped
    assert "non-finite" in str(dead[0].headers[DEAD_LETTER_REASON_HEADER])
    assert await queue_depth(raw_channel, Topology(namespace).triggers_queue) == 0
    assert "closed channel" in caplog.text
    assert "unexpected failure" not in caplog.text
    assert "left unsettled" not in caplog.text
