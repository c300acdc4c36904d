"""Dead letters kept and operable on real servers: an orchestrator replica consumes
``{ns}.dead-letters`` into MongoDB; a separate client engine (as ``spane api`` runs it)
lists, shows, redrives and drops them over HTTP.

Two kinds of death: a message the inbox cannot decode (dead-lettered by SPANE, its
reason in a header) and a task whose consumer always fails (dead-lettered by RabbitMQ at
the quorum queue's delivery limit, described by ``x-death``). The redriven task arrives
again on its queue; the dropped message is gone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import httpx
import pytest

from bench.deploy import drop_mongo_database
from spane.api import create_app
from spane.bus.base import Delivery
from spane.bus.rabbit import RabbitBus
from spane.config import Settings
from spane.engine import Engine
from spane.orchestrator.service import OrchestratorService
from spane.schemas.messages import TaskMessage
from spane.state.memory import MemoryDefinitionStore
from spane.state.mongo import MongoDefinitionStore
from spane.state.redis import RedisStateStore
from tests.servers import Namespace

WAIT = 30.0
POOL = "flaky"


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Flaky:
    """Fails every batch while ``poisoned``; records the tasks taken afterwards."""

    def __init__(self) -> None:
        self.poisoned = True
        self.taken: list[TaskMessage] = []

    async def __call__(self, batch: Sequence[Delivery[TaskMessage]]) -> None:
        if self.poisoned:
            raise RuntimeError("cannot process this")
        self.taken.extend(d.message for d in batch)


def task(n: int) -> TaskMessage:
    return TaskMessage(
        task_id=f"e{n}:flaky:1",
        execution_id=f"e{n}",
        workflow_id="wf",
        version=1,
        node_id="flaky",
        type=POOL,
        attempt=1,
        input={"n": n},
    )


@pytest.fixture
async def deployment(
    amqp_url: str, redis_url: str, mongodb_url: str
) -> AsyncIterator[tuple[RabbitBus, httpx.AsyncClient]]:
    ns = Namespace.new()

    def bus(name: str) -> RabbitBus:
        return RabbitBus(amqp_url, namespace=ns.name, connection_name=name, delivery_limit=2)

    orchestrator_bus = bus("test-orchestrator")
    state = RedisStateStore(redis_url, namespace=ns.name)
    definitions = MongoDefinitionStore(mongodb_url, database=ns.database)
    for backend in (orchestrator_bus, state, definitions):
        await backend.connect()
    service = OrchestratorService(orchestrator_bus, state, definitions)
    client_engine = Engine(
        settings=Settings(namespace=ns.name, gc_tuning=False),
        bus=bus("test-api"),
        state=RedisStateStore(redis_url, namespace=ns.name),
        definitions=MongoDefinitionStore(mongodb_url, database=ns.database),
        pools=[],
        run_orchestrator=False,
    )
    try:
        await service.start()
        await client_engine.open()
        app = create_app(client_engine, manage_engine=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://spane") as client:
            yield orchestrator_bus, client
    finally:
        await client_engine.close()
        await service.stop()
        await orchestrator_bus.close()
        await state.close()
        await definitions.close()
        await ns.cleanup(
            amqp_url=amqp_url, redis_url=redis_url, mongodb_url=mongodb_url, task_types=[POOL]
        )


@pytest.mark.real
async def test_dead_letters_are_stored_listed_redriven_and_dropped(deployment) -> None:
    bus, client = deployment
    flaky = Flaky()
    pool = await bus.consume_tasks(POOL, flaky, prefetch=4)
    await bus.publish_tasks([task(1)])
    connection = await aio_pika.connect(bus.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(bus.topology.orchestrator_exchange)
        junk = aio_pika.Message(b"order 42 \xff", message_id="junk-1", headers={"x-mine": "yes"})
        await exchange.publish(junk, routing_key="")

    async def both() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await client.get("/v1/dead-letters")).json()["items"]
        return items if len(items) == 2 else None

    items = await eventually(both, "both dead letters stored")
    by_message = {item["message_id"]: item for item in items}
    assert set(by_message) == {"junk-1", "e1:flaky:1"}

    junk_entry = by_message["junk-1"]
    assert "Invalid JSON" in junk_entry["reason"]
    assert junk_entry["queue"] == bus.topology.orchestrator_queue
    assert junk_entry["exchange"] == bus.topology.orchestrator_exchange
    detail = (await client.get(f"/v1/dead-letters/{junk_entry['id']}")).json()
    assert detail["body_encoding"] == "base64"  # not UTF-8
    assert detail["headers"]["x-mine"] == "yes"

    task_entry = by_message["e1:flaky:1"]
    assert task_entry["reason"] == "dead-lettered by RabbitMQ: delivery_limit"
    assert task_entry["exchange"] == bus.topology.tasks_exchange
    assert task_entry["routing_key"] == POOL
    assert task_entry["queue"] == bus.topology.task_queue(POOL)

    flaky.poisoned = False
    response = await client.post(f"/v1/dead-letters/{task_entry['id']}/redrive")
    assert response.status_code == 202, response.text

    async def arrived() -> bool:
        return task(1) in flaky.taken

    await eventually(arrived, "the redriven task")
    await pool.stop()
    assert (await client.get(f"/v1/dead-letters/{task_entry['id']}")).status_code == 404

    assert (await client.delete(f"/v1/dead-letters/{junk_entry['id']}")).status_code == 204
    assert (await client.get("/v1/dead-letters")).json()["items"] == []
    missing = await client.delete(f"/v1/dead-letters/{junk_entry['id']}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.real
async def test_a_redriven_poison_message_dies_again_and_is_kept_again(deployment) -> None:
    bus, client = deployment
    connection = await aio_pika.connect(bus.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(bus.topology.orchestrator_exchange)
        await exchange.publish(aio_pika.Message(b"{}", message_id="junk-2"), routing_key="")

    async def stored() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await client.get("/v1/dead-letters")).json()["items"]
        return items

    [first] = await eventually(stored, "the dead letter")
    assert "needs 'kind'" in first["reason"]
    assert (await client.post(f"/v1/dead-letters/{first['id']}/redrive")).status_code == 202

    async def again() -> list[dict[str, Any]]:
        return [item for item in await stored() if item["id"] != first["id"]]

    [second] = await eventually(again, "the redriven message dead-lettered again")
    assert second["message_id"] == "junk-2"
    assert second["reason"] == first["reason"]
    assert [item["id"] for item in await stored()] == [second["id"]]


@pytest.mark.real
async def test_a_redrive_nowhere_is_refused_and_keeps_the_entry(deployment) -> None:
    bus, client = deployment
    origins = {"elsewhere": "x", bus.topology.tasks_exchange: "no-such-pool"}
    for n, (exchange, routing_key) in enumerate(origins.items()):
        await client_definitions(client).record_dead_letter(
            {"id": f"d{n}", "dead_at": float(n), "reason": "r", "queue": "q",
             "exchange": exchange, "routing_key": routing_key, "body": "{}",
             "body_encoding": "utf-8"}
        )  # fmt: skip
        refused = await client.post(f"/v1/dead-letters/d{n}/redrive")
        assert refused.status_code == 409, refused.text
        assert routing_key in refused.json()["detail"] or exchange in refused.json()["detail"]
    kept = (await client.get("/v1/dead-letters")).json()["items"]
    assert [item["id"] for item in kept] == ["d1", "d0"]


def client_definitions(client: httpx.AsyncClient) -> Any:
    """The definition store of the app behind ``client`` (its engine's)."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return transport.app.state.spane.engine.definitions  # type: ignore[attr-defined]


# ----------------------------------------------------- the store's side, both backends
@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryDefinitionStore()
        return
    mongodb_url: str = request.getfixturevalue("mongodb_url")
    database = f"spanetest_{uuid.uuid4().hex[:8]}"
    mongo = MongoDefinitionStore(mongodb_url, database=database)
    await mongo.connect()
    try:
        yield mongo
    finally:
        await drop_mongo_database(mongodb_url, database)
        await mongo.close()


def entry(entry_id: str, dead_at: float, **extra: Any) -> dict[str, Any]:
    return {"id": entry_id, "dead_at": dead_at, "reason": "r", "body": "{}", **extra}


async def test_store_keeps_one_entry_per_id_and_pages_by_position(store: Any) -> None:
    for item in (entry("b", 2.0), entry("a", 2.0), entry("c", 3.0), entry("z", 1.0)):
        await store.record_dead_letter(item)
    await store.record_dead_letter(entry("c", 3.0, reason="stored twice"))  # a redelivery
    assert [e["id"] for e in await store.list_dead_letters()] == ["c", "b", "a", "z"]
    assert (await store.get_dead_letter("c"))["reason"] == "stored twice"
    assert await store.get_dead_letter("nope") is None
    page = await store.list_dead_letters(2, before=(2.0, "b"))
    assert [e["id"] for e in page] == ["a", "z"]
    assert await store.list_dead_letters(0) == []
    assert await store.delete_dead_letter("b") is True
    assert await store.delete_dead_letter("b") is False
    assert [e["id"] for e in await store.list_dead_letters()] == ["c", "a", "z"]
    assert "_id" not in (await store.list_dead_letters())[0]
