"""Pools on RabbitMQ: a task with a pool goes to that pool's queue, and ``pool_stats``
reads each queue's depth and consumers with a passive declare (which creates nothing)."""

from __future__ import annotations

import asyncio
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Sequence

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from spane.bus.base import Delivery, QueueStats
from spane.bus.rabbit import RabbitBus
from spane.bus.topology import Topology
from spane.schemas.messages import TaskMessage
from tests.servers import Namespace

POOLS = ("function", "scoring", "batch", "never-declared")
WAIT = 10.0


def task(n: int, pool: str | None = None) -> TaskMessage:
    return TaskMessage(
        task_id=f"e1:n{n}:1",
        execution_id="e1",
        workflow_id="wf",
        version=1,
        node_id=f"n{n}",
        type="function",
        attempt=1,
        function="t.fn",
        pool=pool,
    )


@pytest.fixture
async def rabbit(amqp_url: str) -> AsyncIterator[RabbitBus]:
    namespace = Namespace.new()
    bus = RabbitBus(amqp_url, namespace=namespace.name, connection_name=namespace.name)
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()
        from bench.deploy import delete_rabbit_namespace

        await delete_rabbit_namespace(amqp_url, namespace.name, POOLS)


async def _stats_when(bus: RabbitBus, expected: dict[str, QueueStats]) -> dict[str, QueueStats]:
    """The broker's counts settle a moment after a publish confirm: poll until they match."""
    stats: dict[str, QueueStats] = {}
    async with asyncio.timeout(WAIT):
        while stats != expected:
            stats = await bus.pool_stats(list(expected))
            if stats != expected:
                await asyncio.sleep(0.05)
    return stats


async def test_tasks_queue_per_pool_and_stats_count_them(rabbit: RabbitBus) -> None:
    await rabbit.publish_tasks([task(1), task(2, "scoring"), task(3, "scoring")])
    await _stats_when(
        rabbit,
        {
            "function": QueueStats(1, 0),
            "scoring": QueueStats(2, 0),
            "never-declared": QueueStats(0, 0),
        },
    )

    got: list[str] = []
    two = asyncio.Event()

    async def handler(batch: Sequence[Delivery[TaskMessage]]) -> None:
        got.extend(delivery.message.task_id for delivery in batch)
        if len(got) >= 2:
            two.set()

    consumer = await rabbit.consume_tasks("scoring", handler, prefetch=4)
    async with asyncio.timeout(WAIT):
        await two.wait()
    assert sorted(got) == ["e1:n2:1", "e1:n3:1"]  # only the scoring pool's tasks
    await _stats_when(rabbit, {"scoring": QueueStats(0, 1), "function": QueueStats(1, 0)})
    await consumer.stop()
    await _stats_when(rabbit, {"scoring": QueueStats(0, 0)})


async def test_stats_of_a_missing_pool_create_no_queue(rabbit: RabbitBus, amqp_url: str) -> None:
    assert await rabbit.pool_stats(["never-declared", "batch"]) == {
        "never-declared": QueueStats(0, 0),
        "batch": QueueStats(0, 0),
    }
    # still usable afterwards (a failed passive declare closes only its own channel)
    await rabbit.publish_tasks([task(4, "batch")])
    await _stats_when(rabbit, {"batch": QueueStats(1, 0)})
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = Topology(rabbit.topology.namespace).task_queue("never-declared")
        with pytest.raises(ChannelNotFoundEntity):
            await channel.declare_queue(queue, passive=True)


# ------------------------------------------------------- the worker process
def _env(namespace: Namespace, amqp_url: str, redis_url: str, mongodb_url: str) -> dict[str, str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("SPANE_")}
    return {
        **base,
        "SPANE_AMQP_URL": amqp_url,
        "SPANE_REDIS_URL": redis_url,
        "SPANE_MONGODB_URL": mongodb_url.rstrip("/") + "/" + namespace.database,
        "SPANE_NAMESPACE": namespace.name,
        "SPANE_METRICS_PORT": "0",
        "SPANE_LOG_FORMAT": "text",
    }


async def test_one_worker_process_serves_every_pool_it_is_given(
    amqp_url: str, redis_url: str, mongodb_url: str
) -> None:
    """``spane worker --pool function --pool function:scoring`` consumes both queues, and
    ``spane status`` (no id) shows them; SIGTERM stops it cleanly."""
    import signal
    import subprocess
    import sys

    namespace = Namespace.new()
    env = _env(namespace, amqp_url, redis_url, mongodb_url)
    args = ["worker", "--pool", "function", "--pool", "function:scoring", "--grace", "1"]
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "spane", *args, env=env, stdout=PIPE, stderr=subprocess.STDOUT
    )
    bus = RabbitBus(amqp_url, namespace=namespace.name, connection_name=namespace.name)
    try:
        await bus.connect()
        want = {"function": QueueStats(0, 1), "scoring": QueueStats(0, 1), "http": QueueStats(0, 0)}
        await _stats_when(bus, want)
        status = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spane", "status", env=env, stdout=PIPE, stderr=PIPE
        )
        out, err = await asyncio.wait_for(status.communicate(), 60)
        assert status.returncode == 0, err.decode()
        rows = {line.split()[0]: line.split()[1:] for line in out.decode().splitlines()}
        assert rows["pool"] == ["waiting", "consumers"]
        assert rows["function"] == ["0", "1"]
        assert rows["http"] == ["0", "0"]
        assert "scoring" not in rows  # no registered workflow names it: not listed
        worker.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(worker.communicate(), 30)
        assert worker.returncode == 0, output.decode()
        assert "(pool function:scoring)" in output.decode()
        await _stats_when(bus, {"function": QueueStats(0, 0), "scoring": QueueStats(0, 0)})
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await bus.close()
        await namespace.cleanup(
            amqp_url=amqp_url,
            redis_url=redis_url,
            mongodb_url=mongodb_url,
            task_types=["function", "scoring", "http"],
        )
