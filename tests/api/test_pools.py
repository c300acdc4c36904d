"""``GET /v1/pools``: each pool's waiting tasks and consumers (embedded engine: one
worker per pool, concurrency 1, so tasks beyond the running one and the one the
worker holds for its next slot wait in the queue)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from spane import Engine, TaskRegistry
from spane.api import create_app
from spane.config import Settings

from .conftest import node_status, register, start, wait_for

SCORING = {
    "id": "scored",
    "defaults": {"pool": "scoring"},
    "nodes": [{"id": "hold", "function": "t.block"}],
}


@pytest.fixture
def pooled(gate: threading.Event) -> Iterator[TestClient]:
    reg = TaskRegistry()

    @reg.task("t.block")
    def block(data: Any) -> Any:
        gate.wait(10)
        return data

    engine = Engine(registry=reg, settings=Settings(gc_tuning=False, worker_concurrency=1))
    with TestClient(create_app(engine)) as client:
        yield client
        gate.set()


def pools(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/pools")
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["pool"] for item in items] == sorted(item["pool"] for item in items)
    return {item.pop("pool"): item for item in items}


def test_pools_list_the_builtin_and_named_pools_with_their_consumers(
    pooled: TestClient,
) -> None:
    assert pools(pooled) == {
        "function": {"messages": 0, "consumers": 1},
        "http": {"messages": 0, "consumers": 1},
    }
    register(pooled, SCORING)  # the engine starts a worker for the pool it names
    assert pools(pooled)["scoring"] == {"messages": 0, "consumers": 1}


def test_tasks_a_busy_pool_has_not_taken_are_counted(
    pooled: TestClient, gate: threading.Event
) -> None:
    register(pooled, SCORING)
    first = start(pooled, "scored", {"n": 1})
    wait_for(pooled, first, node_status("hold", "running"))
    for n in (2, 3, 4):
        start(pooled, "scored", {"n": n})
    deadline = time.monotonic() + 10
    while (scoring := pools(pooled)["scoring"])["messages"] < 2:
        assert time.monotonic() < deadline, scoring
        time.sleep(0.01)
    # one running, one held by the worker for its next slot, two waiting in the queue
    assert scoring == {"messages": 2, "consumers": 1}
    assert pools(pooled)["function"] == {"messages": 0, "consumers": 1}
    gate.set()
    deadline = time.monotonic() + 10
    while pools(pooled)["scoring"]["messages"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
