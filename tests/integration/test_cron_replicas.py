"""Cron triggers with several orchestrator replicas: one execution per tick.

Two :class:`OrchestratorService` replicas share one bus and one state store (the
embedded backends, and — when the servers answer — RabbitMQ and Redis), and one
injected clock that the test moves from tick to tick. Each replica's cron loop fires
every tick; the starts are idempotent, so each tick starts exactly one execution.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from spane.bus.base import Bus
from spane.bus.memory import MemoryBus
from spane.compiler import compile_plan
from spane.core.cron import cron_execution_id
from spane.orchestrator.cron import CronLoop
from spane.orchestrator.service import OrchestratorService
from spane.schemas.loader import spec_from_data
from spane.state.base import StateStore
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore
from tests.servers import Namespace

EVERY_MINUTE = {
    "id": "minutely",
    "triggers": [{"cron": "* * * * *", "timezone": "Europe/Paris", "input": {"n": 1}}],
    "nodes": [{"id": "done", "type": "noop"}],
}
T0 = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()
TICKS = 3


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _one_execution_per_tick(buses: list[Bus], state: list[StateStore]) -> None:
    clock = _Clock(T0)
    definitions = MemoryDefinitionStore()
    spec = spec_from_data(EVERY_MINUTE)
    await definitions.register(spec, compile_plan(spec).checksum, T0)
    replicas = [
        OrchestratorService(bus, store, definitions, clock=clock)
        for bus, store in zip(buses, state, strict=True)
    ]
    for replica in replicas:
        replica.cron.max_sleep = 0.02  # notice the test's clock moves quickly
        await replica.start()
    try:
        await asyncio.sleep(0.1)
        assert await state[0].list_executions("minutely") == []  # no tick yet
        for tick in range(1, TICKS + 1):
            clock.now = T0 - 30 + 60 * tick + 1  # just past minute `tick`

            async def started(count: int = tick) -> bool:
                return len(await state[0].list_executions("minutely")) >= count

            await _eventually(started)
            await asyncio.sleep(0.2)  # both loops had several looks at this tick
        executions = await state[0].list_executions("minutely")
        expected = {cron_execution_id("minutely", 0, T0 - 30 + 60 * t) for t in range(1, 4)}
        assert {meta.id for meta in executions} == expected
        assert all(meta.input == {"n": 1} for meta in executions)
        # A replica that missed the cursor (its own empty store) fires the last tick
        # again: the start is a no-op.
        late = CronLoop(buses[0], MemoryStateStore(), definitions, replicas[0].plans, clock)
        await late.fire_due()
        await asyncio.sleep(0.2)
        assert len(await state[0].list_executions("minutely")) == TICKS
    finally:
        for replica in replicas:
            await replica.stop()


async def test_two_replicas_in_memory_start_one_execution_per_tick() -> None:
    bus = MemoryBus()
    state = MemoryStateStore()
    await bus.connect()
    try:
        await _one_execution_per_tick([bus, bus], [state, state])
    finally:
        await bus.close()


@pytest.mark.real
async def test_two_replicas_on_rabbitmq_and_redis_start_one_execution_per_tick(
    amqp_url: str, redis_url: str
) -> None:
    from bench.deploy import delete_rabbit_namespace, delete_redis_namespace
    from spane.bus.rabbit import RabbitBus
    from spane.state.redis import RedisStateStore

    namespace = Namespace.new("spanecron")
    buses: list[Bus] = [
        RabbitBus(amqp_url, namespace=namespace.name, connection_name=f"cron-{i}") for i in range(2)
    ]
    stores: list[StateStore] = [
        RedisStateStore(redis_url, namespace=namespace.name) for _ in range(2)
    ]
    try:
        for bus, store in zip(buses, stores, strict=True):
            await bus.connect()
            await store.connect()
        await _one_execution_per_tick(buses, stores)
        cursors = await stores[1].cron_cursors(["minutely:0", "unknown:0"])
        assert cursors == {"minutely:0": T0 - 30 + 60 * TICKS}
    finally:
        for bus, store in zip(buses, stores, strict=True):
            await bus.close()
            await store.close()
        await delete_rabbit_namespace(amqp_url, namespace.name, [])
        await delete_redis_namespace(redis_url, namespace.name)
