"""The metrics and health server of the orchestrator and worker processes.

``/readyz`` answers 503 with the failing check's reason while the broker is away and 200
again after; ``/livez`` fails when the event loop lags; ``/metrics`` serves the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from spane import TaskRegistry
from spane.bus.memory import MemoryBus
from spane.observability.health import bus_check, flag_check, run_checks, state_check
from spane.observability.metrics import Metrics
from spane.observability.server import ObservabilityServer
from spane.state.memory import MemoryStateStore
from spane.workers.runtime import Worker
from tests.proxy import TcpProxy
from tests.scenarios.helpers import eventually
from tests.servers import Namespace


class SwitchableBus(MemoryBus):
    """The memory bus with a ``connected`` flag, as the RabbitMQ bus has."""

    connected = True


class BrokenState(MemoryStateStore):
    async def get_meta(self, execution_id: str) -> Any:
        raise ConnectionError("Redis is down")


@contextlib.asynccontextmanager
async def served(**kwargs: Any) -> AsyncIterator[tuple[ObservabilityServer, str]]:
    server = ObservabilityServer(port=0, host="127.0.0.1", **kwargs)
    async with server:
        yield server, f"http://127.0.0.1:{server.port}"


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, json.loads(await response.text())


async def test_readyz_follows_the_bus_connection() -> None:
    bus = SwitchableBus()
    checks = {"bus": bus_check(bus), "state": state_check(MemoryStateStore())}
    async with served(metrics=None, checks=checks) as (_, url):
        assert await get(f"{url}/readyz") == (
            200,
            {"status": "ok", "checks": {"bus": None, "state": None}},
        )
        bus.connected = False
        status, body = await get(f"{url}/readyz")
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["checks"] == {"bus": "not connected to the broker", "state": None}
        bus.connected = True
        assert (await get(f"{url}/readyz"))[0] == 200


async def test_a_failing_or_slow_check_gives_its_reason() -> None:
    async def slow() -> str | None:
        await asyncio.sleep(5)
        return None

    checks = {"state": state_check(BrokenState()), "slow": slow}
    assert await run_checks(checks, timeout=0.05) == {
        "state": "ConnectionError: Redis is down",
        "slow": "no answer within 0.05 s",
    }


async def test_a_worker_is_ready_while_it_consumes() -> None:
    bus, state = MemoryBus(), MemoryStateStore()
    worker = Worker(bus, state, pool="function", registry=TaskRegistry())
    checks = {"consumer": flag_check(lambda: worker.consuming, "not consuming tasks")}
    async with served(metrics=None, checks=checks) as (_, url):
        assert (await get(f"{url}/readyz"))[0] == 503
        await worker.start()
        assert (await get(f"{url}/readyz"))[0] == 200
        await worker.stop(grace=1.0)
        status, body = await get(f"{url}/readyz")
        assert (status, body["checks"]) == (503, {"consumer": "not consuming tasks"})


async def test_livez_fails_while_the_event_loop_lags() -> None:
    async with served(metrics=Metrics(process_metrics=False), checks={}, max_lag=0.2) as (
        server,
        url,
    ):
        assert (await get(f"{url}/livez"))[0] == 200
        server.lag = 0.5  # what the monitor measures after a blocking call
        status, body = await get(f"{url}/livez")
        assert status == 503
        assert "event loop lags" in body["checks"]["event_loop"]
        await eventually(lambda: server.lag < 0.2, timeout=3)  # the next tick measures again
        assert (await get(f"{url}/livez"))[0] == 200


async def test_metrics_are_served_and_off_is_a_404() -> None:
    metrics = Metrics(process_metrics=False)
    metrics.record_batch(4, 0.003)
    async with served(metrics=metrics, checks={}) as (_, url):
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
            assert response.status == 200
            assert "spane_orchestrator_batch_size_count 1.0" in await response.text()
        await asyncio.sleep(0.6)  # a lag tick
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
            assert "spane_event_loop_lag_seconds" in await response.text()
    async with (
        served(metrics=None, checks={}) as (_, url),
        aiohttp.ClientSession() as session,
        session.get(f"{url}/metrics") as response,
    ):
        assert response.status == 404


async def test_a_busy_port_is_an_os_error_and_stop_still_cleans_up() -> None:
    async with served(metrics=None, checks={}) as (first, _):
        second = ObservabilityServer(metrics=None, checks={}, port=first.port, host="127.0.0.1")
        with pytest.raises(OSError):  # noqa: PT011 - the errno differs per platform
            await second.start()
        await second.stop()


async def test_readyz_turns_503_while_rabbitmq_is_away(amqp_url: str) -> None:
    from bench.deploy import delete_rabbit_namespace
    from spane.bus.rabbit import RabbitBus

    target = urlsplit(amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    port = await proxy.start()
    proxied = (
        f"amqp://{target.username}:{target.password}@127.0.0.1:{port}{target.path or '/'}"
        "?reconnect_interval=0.3"
    )
    namespace = Namespace.new().name
    bus = RabbitBus(proxied, namespace=namespace, connection_name="test-health")
    try:
        await bus.connect()
        async with served(metrics=None, checks={"bus": bus_check(bus)}) as (_, url):

            async def status() -> int:
                return (await get(f"{url}/readyz"))[0]

            assert await status() == 200
            proxy.refuse = True
            proxy.cut()
            await eventually(lambda: _is(status(), 503), timeout=10, what="503 in the outage")
            proxy.refuse = False
            await eventually(lambda: _is(status(), 200), timeout=20, what="200 after it")
    finally:
        await bus.close()
        await proxy.close()
        await delete_rabbit_namespace(amqp_url, namespace, [])


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)
