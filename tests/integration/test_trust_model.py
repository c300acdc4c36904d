"""The trust model on a real broker (docs/operations.md, "Trust model"): a worker whose
RabbitMQ user has only the permissions documented for workers runs its tasks, but cannot
publish to the orchestrator exchange, and anything but a result that reaches the inbox
through the results exchange is dead-lettered, never applied.

The test makes its own vhost and users with ``rabbitmqctl`` (the broker runs on this
machine); without it the test is skipped, and under ``CI=true`` it fails."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from spane.bus.rabbit import RabbitBus
from spane.errors import InvalidMessageError
from spane.orchestrator.service import OrchestratorService
from spane.schemas.messages import CancelCommand
from spane.state.memory import MemoryDefinitionStore
from spane.state.redis import RedisStateStore
from spane.workers.registry import TaskRegistry
from spane.workers.runtime import Worker
from tests.integration.test_state_contract import _unlink_namespace

pytestmark = pytest.mark.real

NS = "spane"
WORKER_PERMISSIONS = (
    rf"^{NS}\.(tasks\.[^.]+|cancellations\..+)$",  # configure: its queues only
    rf"^{NS}\.(results|dlx|tasks\.[^.]+|cancellations\..+)$",  # write
    rf"^{NS}\.(tasks|tasks\.[^.]+|cancellations|cancellations\..+)$",  # read
)


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@dataclass
class Vhost:
    name: str
    admin_url: str
    worker_url: str


def _with(url: str, user: str, password: str, vhost: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user)}:{quote(password)}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(vhost, safe=""), "", ""))


@pytest.fixture
def vhost(amqp_url: str) -> Iterator[Vhost]:
    if shutil.which("rabbitmqctl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("rabbitmqctl is needed to make the test's vhost and users")
        pytest.skip("rabbitmqctl not found (needed to make the test's vhost and users)")
    token = uuid.uuid4().hex[:8]
    name, admin, worker = f"spane-trust-{token}", f"spane-admin-{token}", f"spane-worker-{token}"
    _ctl("add_vhost", name)
    try:
        _ctl("add_user", admin, token)
        _ctl("set_permissions", "-p", name, admin, ".*", ".*", ".*")
        _ctl("add_user", worker, token)
        _ctl("set_permissions", "-p", name, worker, *WORKER_PERMISSIONS)
        yield Vhost(name, _with(amqp_url, admin, token, name), _with(amqp_url, worker, token, name))
    finally:
        for user in (admin, worker):
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)


@dataclass
class Deployment:
    vhost: Vhost
    service: OrchestratorService
    runs: list[Any]


@pytest.fixture
async def deployment(vhost: Vhost, redis_url: str) -> AsyncIterator[Deployment]:
    namespace = f"spane-test-{uuid.uuid4().hex[:8]}"
    state = RedisStateStore(redis_url, namespace=namespace)
    worker_state = RedisStateStore(redis_url, namespace=namespace)
    orchestrator_bus = RabbitBus(vhost.admin_url, namespace=NS)
    worker_bus = RabbitBus(vhost.worker_url, namespace=NS, declare_topology=False)
    registry = TaskRegistry()
    runs: list[Any] = []

    @registry.task("trust.double")
    async def double(data: int) -> int:
        runs.append(data)
        return data * 2

    service = OrchestratorService(orchestrator_bus, state, MemoryDefinitionStore())
    worker = Worker(worker_bus, worker_state, pool="function", registry=registry)
    try:
        await state.connect()
        await worker_state.connect()
        await orchestrator_bus.connect()  # declares the topology the worker may not
        await worker_bus.connect()
        await service.start()
        await worker.start()
        yield Deployment(vhost, service, runs)
    finally:
        await worker.stop(grace=1.0)
        await service.stop()
        for bus in (worker_bus, orchestrator_bus):
            await bus.close()
        for store in (state, worker_state):
            await store.close()
        await _unlink_namespace(redis_url, namespace)


async def test_a_worker_with_only_worker_permissions_runs_tasks_but_sends_no_commands(
    deployment: Deployment,
) -> None:
    from spane import Engine

    client = Engine(
        bus=RabbitBus(deployment.vhost.admin_url, namespace=NS),
        state=deployment.service.state,
        definitions=deployment.service.definitions,
        pools=[],
        run_orchestrator=False,
    )
    async with client:
        await client.register(
            {"id": "trust", "nodes": [{"id": "d", "type": "function", "function": "trust.double"}]}
        )
        result = await client.run("trust", 21, timeout=30)
    assert result.succeeded, result.error
    assert result.output == 42
    assert deployment.runs == [21]

    # the worker's user cannot publish to the orchestrator exchange at all
    connection = await aio_pika.connect(deployment.vhost.worker_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{NS}.orchestrator", ensure=False)
        with pytest.raises(ChannelAccessRefused):
            await exchange.publish(aio_pika.Message(b"{}"), routing_key="")
    finally:
        await connection.close()


async def test_a_command_sent_through_the_results_exchange_is_dead_lettered(
    deployment: Deployment,
) -> None:
    """What a worker can write reaches the inbox only as a result or heartbeat; anything
    else is dead-lettered with the reason (and kept as a dead letter), never applied."""
    worker_bus = RabbitBus(deployment.vhost.worker_url, namespace=NS, declare_topology=False)
    await worker_bus.connect()
    try:
        cancel = CancelCommand(execution_id="anything", reason="forged by a worker")
        await worker_bus.publish_results([cancel])  # type: ignore[list-item]  # forged on purpose
    finally:
        await worker_bus.close()
    definitions = deployment.service.definitions
    kept: list[Any] = []
    for _ in range(600):  # polls for up to ~30 s
        kept = await definitions.list_dead_letters(limit=10)
        if kept:
            break
        await asyncio.sleep(0.05)
    [entry] = kept
    assert "CancelCommand arrived through spane.results" in entry["reason"]
    assert "workers cannot send commands" in entry["reason"]


def test_the_results_only_decoder_names_the_refusal() -> None:
    from spane.bus.rabbit_messages import results_only

    class Incoming:
        exchange = "spane.results"

    decoder = results_only(lambda _: CancelCommand(execution_id="e"), "spane.results")
    with pytest.raises(InvalidMessageError, match="workers cannot send commands"):
        decoder(Incoming())  # type: ignore[arg-type]  # a stand-in for an incoming message
