"""DESIGN §5 guarantees, against real servers, with orchestrators and workers as OS
processes: kill -9 in the middle of many executions, a broker outage, a duplicate
task delivery. Every execution must finish with the right output and no node result
may be applied twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from spane import Engine, ExecutionStatus
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import TaskMessage
from tests.chaos.conftest import WORKFLOW, Deployment, expected_output
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(240)]

EXECUTIONS = 40
DEADLINE = 150.0


class Tally:
    """Node lifecycle events, deduplicated by their (deterministic) id."""

    def __init__(self) -> None:
        self.succeeded: dict[tuple[str, str], set[str]] = defaultdict(set)

    async def on_event(self, routing_key: str, event: LifecycleEvent) -> None:
        if event.data.get("status") == "succeeded":
            self.succeeded[(event.subject, event.data["node_id"])].add(event.id)

    def applied_twice(self) -> dict[tuple[str, str], set[str]]:
        return {key: ids for key, ids in self.succeeded.items() if len(ids) > 1}


async def _start_many(client: Engine, count: int) -> dict[str, int]:
    ids = {}
    for n in range(count):
        ids[await client.start("chaos", {"n": n})] = n
    return ids


async def _check_all(client: Engine, ids: dict[str, int], tally: Tally, deploy: Deployment) -> None:
    try:
        results = await asyncio.gather(*(client.wait(eid, DEADLINE) for eid in ids))
    except TimeoutError:
        pytest.fail(f"executions did not finish in {DEADLINE}s\n{deploy.log_tail()}")
    wrong = {
        r.execution_id: (r.status, r.output)
        for r in results
        if r.status != ExecutionStatus.SUCCEEDED or r.output != expected_output(ids[r.execution_id])
    }
    assert not wrong, f"{len(wrong)} execution(s) wrong: {list(wrong.items())[:5]}"
    for eid in ids:
        snapshot = await client.status(eid)
        for node_id, state in snapshot.nodes.items():
            assert state.status == "succeeded", (eid, node_id, state)
            assert state.attempt == 1 + state.lost, (eid, node_id, state)
    await asyncio.sleep(0.5)  # late duplicate events, if any, arrive now
    assert not tally.applied_twice(), f"node results applied twice: {tally.applied_twice()}"


@contextlib.asynccontextmanager
async def _tallying(client: Engine) -> AsyncIterator[Tally]:
    tally = Tally()
    await client.subscribe("node.chaos.#", tally.on_event)
    yield tally


async def test_kill_9_an_orchestrator_and_a_worker_mid_run(
    deployment: Deployment, client: Engine
) -> None:
    first = deployment.orchestrator()
    deployment.orchestrator()
    doomed = deployment.worker()
    deployment.worker()
    await client.register(WORKFLOW)
    async with _tallying(client) as tally:
        ids = await _start_many(client, EXECUTIONS)
        await asyncio.sleep(1.5)
        deployment.kill(first)
        deployment.kill(doomed)
        deployment.orchestrator()  # the restarted replica
        deployment.worker()
        await _check_all(client, ids, tally, deployment)


async def test_broker_outage_is_survived(deployment: Deployment, client: Engine) -> None:
    target = urlsplit(deployment.env["SPANE_AMQP_URL"])
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    port = await proxy.start()
    proxied = (
        f"amqp://{target.username}:{target.password}@127.0.0.1:{port}{target.path or '/'}"
        "?reconnect_interval=0.5"
    )
    try:
        deployment.orchestrator(env={"SPANE_AMQP_URL": proxied})
        deployment.worker(env={"SPANE_AMQP_URL": proxied})
        await client.register(WORKFLOW)
        async with _tallying(client) as tally:
            ids = await _start_many(client, EXECUTIONS)
            await asyncio.sleep(1.0)
            proxy.refuse = True
            proxy.cut()
            await asyncio.sleep(4.0)
            proxy.refuse = False
            await _check_all(client, ids, tally, deployment)
    finally:
        await proxy.close()


async def test_a_duplicate_task_delivery_does_not_run_a_finished_attempt_again(
    deployment: Deployment, client: Engine
) -> None:
    deployment.orchestrator()
    deployment.worker()
    await client.register(WORKFLOW)
    async with _tallying(client) as tally:
        result = await client.run("chaos", {"n": 4}, timeout=60)
        assert result.output == expected_output(4)
        task_id = f"{result.execution_id}:a:1"
        duplicate = TaskMessage(
            task_id=task_id,
            execution_id=result.execution_id,
            workflow_id="chaos",
            version=1,
            node_id="a",
            type="function",
            attempt=1,
            input={"x": 4, "y": 1},
            function="chaos.add",
        )
        await client.bus.publish_tasks([duplicate, duplicate])
        redis = Redis.from_url(deployment.env["SPANE_REDIS_URL"])
        key = f"{deployment.namespace.name}:runs:{task_id}"
        try:
            await asyncio.sleep(2.0)
            assert int(await redis.get(key) or 0) == 1
        finally:
            await redis.aclose()
        again = await client.wait(result.execution_id, 5)
        assert (again.status, again.output) == (ExecutionStatus.SUCCEEDED, expected_output(4))
        assert not tally.applied_twice()
