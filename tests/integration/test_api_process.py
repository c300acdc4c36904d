"""``spane api`` as a process of a distributed deployment, on real servers: the app of
:func:`spane.cli.api_server.make_app` (a client engine: no orchestrator, no pools) next
to an in-process orchestrator replica and worker, each with its own connections, drives
workflows over HTTP (start, signal, read). Then the inspection commands (``spane list``,
``history``, ``dead-letters``) read the same deployment through the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from spane import TaskRegistry
from spane.backends import Backends, open_backends
from spane.cli import api_server
from spane.cli.main import EXIT_OK, EXIT_USAGE, app
from spane.config import Settings
from spane.orchestrator.service import OrchestratorService
from spane.workers.runtime import Worker
from tests.servers import Namespace

pytestmark = pytest.mark.real

WAIT = 30.0
CHAIN = {
    "id": "chain",
    "nodes": [
        {"id": "first", "function": "api.add_one"},
        {"id": "second", "function": "api.add_one", "after": ["first"]},
    ],
}
APPROVAL = {
    "id": "approval",
    "nodes": [
        {"id": "wait", "type": "wait_for_signal", "signal": "approve"},
        {"id": "ship", "function": "api.add_one", "after": ["wait"]},
    ],
}


def _registry() -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("api.add_one")
    async def add_one(data: dict[str, Any]) -> dict[str, Any]:
        return {"n": data["n"] + 1}

    return reg


@pytest.fixture
async def deployment(
    amqp_url: str, redis_url: str, mongodb_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    ns = Namespace.new()
    env = {
        "SPANE_AMQP_URL": amqp_url,
        "SPANE_REDIS_URL": redis_url,
        "SPANE_MONGODB_URL": f"{mongodb_url.rstrip('/')}/{ns.database}",
        "SPANE_NAMESPACE": ns.name,
        "SPANE_GC_TUNING": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    opened: list[Backends] = []
    service: OrchestratorService | None = None
    worker: Worker | None = None
    try:
        orchestrator = await open_backends(settings, allow_embedded=False, process="orch")
        opened.append(orchestrator)
        service = OrchestratorService(
            orchestrator.bus, orchestrator.state, orchestrator.definitions
        )
        await service.start()
        pool = await open_backends(settings, allow_embedded=False, process="worker")
        opened.append(pool)
        worker = Worker(pool.bus, pool.state, pool="function", registry=_registry())
        await worker.start()
        api = api_server.make_app(settings)
        async with api.router.lifespan_context(api):
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield client
    finally:
        if worker is not None:
            await worker.stop(grace=1.0)
        if service is not None:
            await service.stop()
        for backends in opened:
            await backends.close()
        await ns.cleanup(
            amqp_url=amqp_url,
            redis_url=redis_url,
            mongodb_url=mongodb_url,
            task_types=["function"],
        )


async def finished(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/executions/{execution_id}")).json()
        if body["status"] in {"succeeded", "failed", "cancelled", "timed_out"}:
            return body
        assert time.monotonic() < deadline, f"timed out; last state: {body}"
        await asyncio.sleep(0.05)


async def test_the_api_process_drives_workflows_over_the_bus(deployment) -> None:
    client = deployment
    for definition in (CHAIN, APPROVAL):
        assert (await client.post("/v1/workflows", json=definition)).status_code == 201
    started = await client.post("/v1/workflows/chain/executions", json={"input": {"n": 1}})
    assert started.status_code == 201, started.text
    chain_id = started.json()["execution_id"]
    body = await finished(client, chain_id)
    assert body["status"] == "succeeded"
    assert body["output"] == {"n": 3}

    waiting = await client.post("/v1/workflows/approval/executions", json={"input": {"n": 10}})
    approval_id = waiting.json()["execution_id"]
    deadline = time.monotonic() + WAIT
    while True:  # the signal is refused (409) until the node waits for it
        signalled = await client.post(
            f"/v1/executions/{approval_id}/signals/approve", json={"data": {"n": 41}}
        )
        if signalled.status_code == 200:
            break
        assert signalled.status_code == 409, signalled.text
        assert time.monotonic() < deadline, signalled.text
        await asyncio.sleep(0.05)
    body = await finished(client, approval_id)
    assert body["status"] == "succeeded"
    assert body["output"] == {"n": 42}

    listed = (await client.get("/v1/executions", params={"workflow_id": "chain"})).json()
    assert [item["id"] for item in listed["items"]] == [chain_id]
    missing = await client.get("/v1/executions/nope")
    assert missing.status_code == 404

    # the same deployment through the CLI (its own event loop, in a thread)
    def cli(*args: str) -> Any:
        return CliRunner().invoke(app, list(args))

    result = await asyncio.to_thread(cli, "list", "--workflow", "chain", "-o", "json")
    assert result.exit_code == EXIT_OK, result.output
    assert [item["id"] for item in json.loads(result.stdout)] == [chain_id]
    result = await asyncio.to_thread(cli, "history", chain_id, "-o", "json")
    assert result.exit_code == EXIT_OK, result.output
    events = [(e["event"], e.get("node")) for e in json.loads(result.stdout)["events"]]
    assert events == [
        ("execution.started", None),
        ("node.started", "first"),
        ("node.succeeded", "first"),
        ("node.started", "second"),
        ("node.succeeded", "second"),
        ("execution.succeeded", None),
    ]
    result = await asyncio.to_thread(cli, "dead-letters", "list", "-o", "json")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout) == {"items": [], "next_cursor": None}
    result = await asyncio.to_thread(cli, "dead-letters", "drop", "nope")
    assert result.exit_code == EXIT_USAGE
    assert "not found" in result.output
