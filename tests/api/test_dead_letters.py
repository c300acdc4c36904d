"""Dead letters over HTTP on the embedded backends: a message whose consumer keeps
failing is dead-lettered by the memory bus, kept by the orchestrator, listed, shown,
redriven (it arrives again) and dropped; unknown ids are 404 problems."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from spane import Engine
from spane.api import create_app
from spane.bus.base import Delivery
from spane.bus.memory import DELIVERY_LIMIT, MemoryBus
from spane.config import Settings
from spane.schemas.messages import TaskMessage

POOL = "poison-pool"


def poison_task(n: int) -> TaskMessage:
    return TaskMessage(
        task_id=f"e{n}:poison:1",
        execution_id=f"e{n}",
        workflow_id="wf",
        version=1,
        node_id="poison",
        type=POOL,
        attempt=1,
        input={"n": n, "bytes": "ü"},
    )


class FlakyConsumer:
    """Fails every delivery while ``poisoned``; records what it took afterwards."""

    def __init__(self) -> None:
        self.poisoned = True
        self.failures = 0
        self.taken: list[TaskMessage] = []

    async def __call__(self, batch: Sequence[Delivery[TaskMessage]]) -> None:
        if self.poisoned:
            self.failures += 1
            raise RuntimeError("cannot process this")
        self.taken.extend(d.message for d in batch)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Engine, httpx.AsyncClient, FlakyConsumer]]:
    engine = Engine(settings=Settings(gc_tuning=False), pools=[])
    await engine.open()
    flaky = FlakyConsumer()
    subscription = await engine.bus.consume_tasks(POOL, flaky, prefetch=1)
    app = create_app(engine, manage_engine=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://spane") as client:
        yield engine, client, flaky
    await subscription.stop()
    await engine.close()


async def eventually(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def listed(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await client.get("/v1/dead-letters")).json()["items"]
        return items if len(items) >= count else None

    result: list[dict[str, Any]] = await eventually(check)
    return result


async def test_a_poison_message_is_kept_listed_redriven_and_dropped(setup) -> None:
    engine, client, flaky = setup
    assert (await client.get("/v1/dead-letters")).json() == {"items": [], "next_cursor": None}
    await engine.bus.publish_tasks([poison_task(1), poison_task(2)])
    items = await listed(client, 2)
    assert flaky.failures >= DELIVERY_LIMIT
    assert isinstance(engine.bus, MemoryBus)
    assert len(engine.bus.dead_letters) == 2  # the bus still records them too
    by_message = {item["message_id"]: item for item in items}
    assert set(by_message) == {"e1:poison:1", "e2:poison:1"}
    first = by_message["e1:poison:1"]
    assert first["reason"].startswith(f"delivery limit ({DELIVERY_LIMIT}) reached")
    assert "cannot process this" in first["reason"]
    assert first["exchange"] == "spane.tasks"
    assert first["routing_key"] == POOL
    assert first["queue"] == f"spane.tasks.{POOL}"
    assert items[0]["dead_at"] >= items[1]["dead_at"]  # newest first

    detail = (await client.get(f"/v1/dead-letters/{first['id']}")).json()
    assert detail["body_encoding"] == "utf-8"
    assert TaskMessage.model_validate_json(detail["body"]) == poison_task(1)
    assert detail["content_type"] == "application/json"

    flaky.poisoned = False
    response = await client.post(f"/v1/dead-letters/{first['id']}/redrive")
    assert response.status_code == 202, response.text
    assert response.json()["routing_key"] == POOL

    async def arrived() -> bool:
        return poison_task(1) in flaky.taken

    await eventually(arrived)
    assert (await client.get(f"/v1/dead-letters/{first['id']}")).status_code == 404

    second = by_message["e2:poison:1"]
    assert (await client.delete(f"/v1/dead-letters/{second['id']}")).status_code == 204
    assert (await client.get("/v1/dead-letters")).json()["items"] == []
    assert flaky.taken == [poison_task(1)]  # the dropped one never came back


async def test_unknown_ids_and_bad_input_are_problems_that_change_nothing(setup) -> None:
    engine, client, _ = setup
    await engine.definitions.record_dead_letter(
        {
            "id": "kept",
            "dead_at": 1.0,
            "reason": "r",
            "queue": "q",
            "exchange": "nowhere",
            "routing_key": "",
            "body": "{}",
            "body_encoding": "utf-8",
        }
    )
    for method, path in (
        ("GET", "/v1/dead-letters/nope"),
        ("POST", "/v1/dead-letters/nope/redrive"),
        ("DELETE", "/v1/dead-letters/nope"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert "nope" in response.json()["detail"]
    bad = await client.get("/v1/dead-letters", params={"cursor": "!!"})
    assert bad.status_code == 422
    assert (await client.get("/v1/dead-letters", params={"limit": 0})).status_code == 422
    refused = await client.post("/v1/dead-letters/kept/redrive")  # unknown exchange
    assert refused.status_code == 409
    assert "nowhere" in refused.json()["detail"]
    assert [e["id"] for e in await engine.list_dead_letters()] == ["kept"]  # unchanged


async def test_pages_follow_the_cursor_newest_first(setup) -> None:
    engine, client, _ = setup
    for i in range(5):
        await engine.definitions.record_dead_letter(
            {
                "id": f"d{i}",
                "dead_at": float(i // 2),
                "reason": "r",
                "queue": "q",
                "exchange": "spane.tasks",
                "routing_key": "x",
                "body": "",
                "body_encoding": "utf-8",
            }
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/dead-letters", params=params)).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["d4", "d3", "d2", "d1", "d0"]
