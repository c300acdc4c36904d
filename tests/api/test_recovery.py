"""``POST /v1/executions/{id}/retry`` and ``/replay``: task bodies are counted, refusals
are problem documents (409 not retryable or expired, 404 unknown, 422 bad node)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from spane import Engine, TaskError, TaskRegistry
from spane.api import ApiConfig, create_app
from spane.config import Settings
from spane.state.memory import MemoryStateStore

from .conftest import finished, register, start, wait_for

PROBLEM = "application/problem+json"
FLOW = {
    "id": "flow",
    "nodes": [
        {"id": "a", "function": "r.step"},
        {"id": "b", "function": "r.step", "after": ["a"]},
        {"id": "c", "function": "r.step", "after": ["b"]},
    ],
}


class Tasks:
    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.broken: set[str] = set()
        self.registry = TaskRegistry()

        @self.registry.task("r.step")
        async def step(data: Any, ctx: Any) -> Any:
            self.runs[ctx.node_id] += 1
            if ctx.node_id in self.broken:
                raise TaskError(f"{ctx.node_id} is broken", non_retryable=True)
            return {"n": (data or {}).get("n", 0) + 1}


@pytest.fixture
def tasks() -> Tasks:
    return Tasks()


@pytest.fixture
def api(tasks: Tasks) -> Iterator[TestClient]:
    engine = Engine(
        registry=tasks.registry,
        settings=Settings(gc_tuning=False),
        state=MemoryStateStore(max_finished=1),  # retention: one archived execution
    )
    with TestClient(create_app(engine, config=ApiConfig())) as client:
        yield client


def _engine(client: TestClient) -> Engine:
    engine: Engine = client.app.state.spane.engine  # type: ignore[attr-defined]
    return engine


def _failed_run(client: TestClient, tasks: Tasks) -> str:
    register(client, FLOW)
    tasks.broken.add("b")
    execution_id = start(client, "flow", {"n": 0})
    assert wait_for(client, execution_id, finished)["status"] == "failed"
    return execution_id


def test_retry_runs_a_failed_execution_again_from_its_failed_node(
    api: TestClient, tasks: Tasks
) -> None:
    execution_id = _failed_run(api, tasks)
    tasks.broken.clear()
    response = api.post(f"/v1/executions/{execution_id}/retry")
    assert response.status_code == 200, response.text
    assert response.json() == {"execution_id": execution_id, "command": "retry"}
    body = wait_for(api, execution_id, finished)
    assert body["status"] == "succeeded"
    assert body["output"] == {"n": 3}
    assert body["retries"] == 1
    assert tasks.runs == Counter({"a": 1, "b": 2, "c": 1})
    attempts = {n["id"]: n["attempt"] for n in body["nodes"]}
    assert attempts == {"a": 1, "b": 2, "c": 1}


def test_retry_of_a_succeeded_execution_is_409_with_the_reason(
    api: TestClient, tasks: Tasks
) -> None:
    register(api, FLOW)
    execution_id = start(api, "flow")
    assert wait_for(api, execution_id, finished)["status"] == "succeeded"
    response = api.post(f"/v1/executions/{execution_id}/retry")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:spane:problem:command-rejected"
    assert "succeeded: nothing to retry" in response.json()["detail"]
    assert tasks.runs == Counter({"a": 1, "b": 1, "c": 1})


def test_retry_of_an_unknown_execution_is_404(api: TestClient) -> None:
    response = api.post("/v1/executions/nope/retry")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


def test_retry_of_an_expired_execution_is_409_expired(api: TestClient, tasks: Tasks) -> None:
    execution_id = _failed_run(api, tasks)
    engine = _engine(api)
    portal = api.portal
    assert portal is not None
    deadline = time.monotonic() + 10
    while portal.call(engine.state.get_meta, execution_id) is not None:
        # another execution archived pushes the failed one out of retention
        other = start(api, "flow")
        wait_for(api, other, finished)
        assert time.monotonic() < deadline, "the failed execution never left retention"
        time.sleep(0.05)
    assert api.get(f"/v1/executions/{execution_id}").status_code == 200  # archived
    response = api.post(f"/v1/executions/{execution_id}/retry")
    assert response.status_code == 409
    assert "no longer retryable: expired" in response.json()["detail"]


def test_replay_starts_a_linked_execution_from_a_middle_node(api: TestClient, tasks: Tasks) -> None:
    register(api, FLOW)
    old = start(api, "flow", {"n": 10})
    assert wait_for(api, old, finished)["output"] == {"n": 13}
    response = api.post(f"/v1/executions/{old}/replay", json={"from_node": "b"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["replay_of"] == old
    assert created["from_node"] == "b"
    body = wait_for(api, created["execution_id"], finished)
    assert body["status"] == "succeeded"
    assert body["replay_of"] == old
    assert body["input"] == {"n": 10}
    assert body["output"] == {"n": 13}
    assert tasks.runs == Counter({"a": 1, "b": 2, "c": 2})


def test_replay_with_a_new_input(api: TestClient, tasks: Tasks) -> None:
    register(api, FLOW)
    old = start(api, "flow", {"n": 10})
    wait_for(api, old, finished)
    response = api.post(f"/v1/executions/{old}/replay", json={"from_node": "a", "input": None})
    assert response.status_code == 201, response.text
    body = wait_for(api, response.json()["execution_id"], finished)
    assert body["input"] is None
    assert body["output"] == {"n": 3}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"from_node": "zz"}, 422, "'zz' is not a node of workflow 'flow' v1 (nodes: a, b, c)"),
        ({}, 422, None),
        ({"from_node": "a", "extra": 1}, 422, None),
    ],
)
def test_replay_refusals(
    api: TestClient, tasks: Tasks, body: dict[str, Any], status: int, detail: str | None
) -> None:
    register(api, FLOW)
    old = start(api, "flow")
    wait_for(api, old, finished)
    response = api.post(f"/v1/executions/{old}/replay", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    if detail is not None:
        assert detail in response.json()["detail"]
    assert tasks.runs == Counter({"a": 1, "b": 1, "c": 1})


def test_replay_of_an_unknown_execution_is_404(api: TestClient) -> None:
    response = api.post("/v1/executions/nope/replay", json={"from_node": "a"})
    assert response.status_code == 404
