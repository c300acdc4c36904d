"""Fixtures of the API tests: an embedded engine with tasks of its own, served by
``create_app`` through Starlette's TestClient (which runs the app's lifespan, so the
app opens and closes the engine on the TestClient's event loop)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from spane import Engine, TaskRegistry
from spane.api import ApiConfig, create_app
from spane.config import Settings

MAX_BODY = 64 * 1024

CHAIN = {
    "id": "chain",
    "nodes": [
        {"id": "first", "function": "t.add_one"},
        {"id": "second", "function": "t.add_one", "after": ["first"]},
    ],
}
SIGNAL = {
    "id": "approval",
    "nodes": [
        {"id": "prepare", "function": "t.echo"},
        {"id": "wait", "type": "wait_for_signal", "signal": "approve", "after": ["prepare"]},
        {"id": "ship", "function": "t.echo", "after": ["wait"]},
    ],
}
BLOCKING = {"id": "blocking", "nodes": [{"id": "hold", "function": "t.block"}]}
FAILING = {"id": "failing", "nodes": [{"id": "boom", "function": "t.boom"}]}


def _registry(gate: threading.Event) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("t.add_one")
    async def add_one(data: dict[str, Any]) -> dict[str, Any]:
        return {"n": data["n"] + 1}

    @reg.task("t.echo")
    async def echo(data: Any) -> Any:
        return data

    @reg.task("t.block")
    def block(data: Any) -> Any:  # a thread: released by the test (or at teardown)
        gate.wait(10)
        return data

    @reg.task("t.boom")
    async def boom(data: Any) -> Any:
        raise ValueError("boom")

    return reg


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def client(gate: threading.Event) -> Iterator[TestClient]:
    engine = Engine(registry=_registry(gate), settings=Settings(gc_tuning=False))
    app = create_app(engine, config=ApiConfig(max_body_bytes=MAX_BODY))
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client
        gate.set()


def register(client: TestClient, definition: dict[str, Any]) -> int:
    response = client.post("/v1/workflows", json=definition)
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


def start(client: TestClient, workflow_id: str, input: Any = None, **extra: Any) -> str:
    response = client.post(
        f"/v1/workflows/{workflow_id}/executions", json={"input": input, **extra}
    )
    assert response.status_code == 201, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


def wait_for(
    client: TestClient,
    execution_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Poll the execution until ``done(body)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/executions/{execution_id}").json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"timed out; last state: {body}"
        time.sleep(0.01)


def finished(body: dict[str, Any]) -> bool:
    return body["status"] in {"succeeded", "failed", "cancelled", "timed_out"}


def node_status(node_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        return any(n["id"] == node_id and n["status"] == status for n in body["nodes"])

    return check
