"""The raw floor of this machine, measured with the clients SPANE itself uses.

RabbitMQ (aio-pika), on private durable *quorum* queues like SPANE's, persistent
messages of about a task message's size, one publisher channel with confirms and one
consumer channel (prefetch 128, ack per message):

- confirms awaited one by one -> msgs/s from the first publish to the last consumed;
- confirms pipelined (``asyncio.gather`` over batches of 128) -> msgs/s, same span;
  the same on a classic durable queue, for reference (what quorum queues cost);
- ping-pong: publish to queue A; a relay consumes A, publishes to B (confirm awaited)
  and acks; the round trip until B's message arrives, halved, is one hop.

Redis (redis-py asyncio): a PING awaited alone (ms), PINGs pipelined (ops/s), a small
Lua script by EVALSHA awaited alone (ms) and pipelined (ops/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from redis.asyncio import Redis

from bench.report import FLOOR_HOP, FLOOR_PIPELINED, FloorResult, Metric

BODY = b'{"kind":"task","payload":"' + b"x" * 400 + b'"}'
"""About the size of a SPANE task message."""
PREFETCH = 128
PIPELINE_BATCH = 128
WAIT_TIMEOUT = 60.0

LUA = "return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)"

FLOOR_SEQUENTIAL = "rabbitmq publish+consume, confirms one by one"
FLOOR_CLASSIC = "rabbitmq same, pipelined, classic queue (reference)"
REDIS_PING = "redis PING awaited alone"
REDIS_PIPELINE = "redis PING pipelined"
REDIS_EVALSHA = "redis EVALSHA (small Lua) awaited alone"
REDIS_EVALSHA_PIPELINE = "redis EVALSHA pipelined"


@dataclass(frozen=True, slots=True)
class FloorSizes:
    repeats: int = 3
    sequential_messages: int = 1000
    pipelined_messages: int = 4000
    pingpongs: int = 300
    redis_calls: int = 2000


QUICK_FLOOR = FloorSizes(repeats=2, sequential_messages=300, pipelined_messages=1500, pingpongs=100)


def _message() -> aio_pika.Message:
    return aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


class _Counter:
    """Consumes a queue, acks each message, and signals when ``target`` have arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()

    def expect(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.done.clear()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        self.count += 1
        if self.count >= self.target:
            self.done.set()


class RabbitFloor:
    """Private quorum queues under ``prefix`` on one connection; removed by :meth:`close`."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.server_version: str | None = None
        self._connection: Any = None
        self._queues: list[str] = []

    async def open(self) -> None:
        self._connection = await aio_pika.connect(
            self.url, client_properties={"connection_name": f"{self.prefix}-floor"}
        )
        properties = self._connection.transport.connection.server_properties
        self.server_version = str(properties.get("version", "")) or None

    async def close(self) -> None:
        if self._connection is None:
            return
        with contextlib.suppress(Exception):
            channel = await self._connection.channel()
            for name in self._queues:
                await channel.queue_delete(name)
        await self._connection.close()
        self._connection = None

    async def _channel(self, *, confirms: bool) -> AbstractChannel:
        channel: AbstractChannel = await self._connection.channel(publisher_confirms=confirms)
        await channel.set_qos(prefetch_count=PREFETCH)
        return channel

    async def _queue(
        self, channel: AbstractChannel, suffix: str, *, quorum: bool = True
    ) -> AbstractQueue:
        name = f"{self.prefix}.floor.{suffix}"
        self._queues.append(name)
        kind = "quorum" if quorum else "classic"
        return await channel.declare_queue(name, durable=True, arguments={"x-queue-type": kind})

    async def throughput(
        self, messages: int, repeats: int, *, pipelined: bool, quorum: bool = True
    ) -> list[float]:
        """msgs/s of publish (+confirm) and consume, one value per repeat."""
        publisher = await self._channel(confirms=True)
        consumer = await self._channel(confirms=False)
        suffix = ("pipelined" if pipelined else "sequential") + ("" if quorum else "-classic")
        queue = await self._queue(consumer, suffix, quorum=quorum)
        counter = _Counter()
        tag = await queue.consume(counter.on_message)
        exchange = publisher.default_exchange
        rates: list[float] = []
        try:
            for _ in range(repeats):
                counter.expect(messages)
                begin = time.perf_counter()
                if pipelined:
                    for start in range(0, messages, PIPELINE_BATCH):
                        size = min(PIPELINE_BATCH, messages - start)
                        await asyncio.gather(
                            *(exchange.publish(_message(), queue.name) for _ in range(size))
                        )
                else:
                    for _ in range(messages):
                        await exchange.publish(_message(), queue.name)
                async with asyncio.timeout(WAIT_TIMEOUT):
                    await counter.done.wait()
                rates.append(messages / (time.perf_counter() - begin))
        finally:
            await queue.cancel(tag)
            await publisher.close()
            await consumer.close()
        return rates

    async def hop_latency(self, rounds: int) -> list[float]:
        """One-way hop latencies (ms): ping-pong round trips through a relay, halved."""
        publisher = await self._channel(confirms=True)
        relay_channel = await self._channel(confirms=True)
        ping = await self._queue(relay_channel, "ping")
        pong = await self._queue(publisher, "pong")
        waiting: list[asyncio.Future[None]] = []

        async def relay(message: AbstractIncomingMessage) -> None:
            await relay_channel.default_exchange.publish(_message(), pong.name)
            await message.ack()

        async def arrived(message: AbstractIncomingMessage) -> None:
            await message.ack()
            if waiting and not waiting[0].done():
                waiting[0].set_result(None)

        relay_tag = await ping.consume(relay)
        pong_tag = await pong.consume(arrived)
        hops: list[float] = []
        try:
            for _ in range(rounds):
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                waiting[:] = [future]
                begin = time.perf_counter()
                await publisher.default_exchange.publish(_message(), ping.name)
                async with asyncio.timeout(WAIT_TIMEOUT):
                    await future
                hops.append((time.perf_counter() - begin) * 1000 / 2)
        finally:
            await ping.cancel(relay_tag)
            await pong.cancel(pong_tag)
            await relay_channel.close()
            await publisher.close()
        return hops


async def _alone(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    """Latency (ms) of ``count`` calls, each awaited before the next."""
    samples: list[float] = []
    for _ in range(count):
        begin = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - begin) * 1000)
    return samples


async def redis_floor(url: str, prefix: str, sizes: FloorSizes) -> tuple[list[Metric], str | None]:
    """Redis round trips; returns the metrics and the server's version."""
    client: Redis = Redis.from_url(url)
    key = f"{prefix}:floor"
    try:
        info: dict[str, Any] = await client.info("server")
        script = client.register_script(LUA)
        await script(keys=[key], args=["n"])  # loads it: later calls are EVALSHA
        ping = Metric(REDIS_PING, "ms", await _alone(client.ping, sizes.redis_calls))
        evalsha = Metric(
            REDIS_EVALSHA,
            "ms",
            await _alone(lambda: script(keys=[key], args=["n"]), sizes.redis_calls),
        )
        pipelined = Metric(REDIS_PIPELINE, "ops/s", better="higher")
        scripts = Metric(REDIS_EVALSHA_PIPELINE, "ops/s", better="higher")
        for _ in range(sizes.repeats):
            for metric, add in ((pipelined, _add_ping), (scripts, _add_script(script, key))):
                async with client.pipeline(transaction=False) as pipe:
                    for _ in range(sizes.redis_calls):
                        await add(pipe)
                    begin = time.perf_counter()
                    await pipe.execute()
                    metric.values.append(sizes.redis_calls / (time.perf_counter() - begin))
        await client.delete(key)
        return [ping, pipelined, evalsha, scripts], str(info.get("redis_version") or "") or None
    finally:
        await client.aclose()


async def _add_ping(pipe: Any) -> None:
    pipe.ping()


def _add_script(script: Any, key: str) -> Callable[[Any], Awaitable[None]]:
    async def add(pipe: Any) -> None:
        await script(keys=[key], args=["n"], client=pipe)

    return add


async def measure_floor(
    amqp_url: str, redis_url: str, prefix: str, sizes: FloorSizes
) -> tuple[FloorResult, dict[str, str]]:
    """Every floor metric; an unreachable server becomes ``FloorResult.error``."""
    result = FloorResult(
        notes=[
            "RabbitMQ figures use durable quorum queues (as SPANE does, except the classic "
            "reference row) and persistent "
            f"{len(BODY)}-byte messages; pipelined = gather over batches of {PIPELINE_BATCH}"
        ]
    )
    versions: dict[str, str] = {}
    rabbit = RabbitFloor(amqp_url, prefix)
    try:
        await rabbit.open()
        if rabbit.server_version:
            versions["rabbitmq"] = rabbit.server_version
        sequential = await rabbit.throughput(
            sizes.sequential_messages, sizes.repeats, pipelined=False
        )
        pipelined = await rabbit.throughput(sizes.pipelined_messages, sizes.repeats, pipelined=True)
        classic = await rabbit.throughput(
            sizes.pipelined_messages, sizes.repeats, pipelined=True, quorum=False
        )
        hops = await rabbit.hop_latency(sizes.pingpongs)
        result.metrics += [
            Metric(FLOOR_SEQUENTIAL, "msgs/s", sequential, better="higher"),
            Metric(FLOOR_PIPELINED, "msgs/s", pipelined, better="higher"),
            Metric(FLOOR_CLASSIC, "msgs/s", classic, better="higher"),
            Metric(FLOOR_HOP, "ms", hops),
        ]
        redis_metrics, redis_version = await redis_floor(redis_url, prefix, sizes)
        result.metrics += redis_metrics
        if redis_version:
            versions["redis"] = redis_version
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        await rabbit.close()
    return result, versions
