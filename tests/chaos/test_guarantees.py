"""DESIGN §5 guarantees, against real servers, with orchestrators and workers as OS
processes: kill -9 in the middle of many executions, a broker outage, a duplicate
task delivery. Every execution must finish with the right output, no node result may be
applied twice, and no attempt's body may run twice (counted by the bodies themselves,
:mod:`tests.chaos.runs`) but one a kill interrupted.

Each fault is shown to land on work in flight (task bodies running at the kill or the
cut, on the process that takes it) and is repeated at several moments (seeded delays),
so a test cannot pass with nothing running."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from spane import Engine, ExecutionStatus
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import TaskMessage
from tests.chaos.conftest import WORKFLOW, Deployment, expected_output
from tests.chaos.runs import RunLog, assert_rerun_as_lost
from tests.proxy import TcpProxy

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(240)]

EXECUTIONS = 40
OUTAGE_EXECUTIONS = 24
"""Fewer under the outage: one worker (8 slots) runs them all."""
DEADLINE = 150.0
SEEDS = [11, 22, 33]
"""Each fault is repeated at moments drawn from these seeds."""
BODIES = "0.15,0.6"
"""Seconds a chaos.add / chaos.mul body takes in the fault tests: long enough for a
fault to land inside bodies, short enough for 40 executions to take a few seconds."""


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


@pytest.mark.parametrize("seed", SEEDS)
async def test_kill_9_an_orchestrator_and_a_worker_mid_run(
    deployment: Deployment, client: Engine, runs: RunLog, seed: int
) -> None:
    await kill_mid_run(deployment, client, runs, seed)


async def kill_mid_run(
    deployment: Deployment, client: Engine, runs: RunLog, seed: int
) -> dict[str, int]:
    """Two orchestrators and two workers; kill -9 one of each while task bodies run,
    start a replacement of each, and check every guarantee. The executions started."""
    deployment.env["CHAOS_SLEEP"] = BODIES
    first = deployment.orchestrator()
    deployment.orchestrator()
    doomed = deployment.worker()
    deployment.worker()
    await client.register(WORKFLOW)
    async with _tallying(client) as tally:
        ids = await _start_many(client, EXECUTIONS)
        await asyncio.sleep(random.Random(seed).uniform(0.0, 3.0))
        await runs.wait_in_flight([deployment.pid(doomed)], 3)
        killed_at = time.time()
        deployment.kill(first)
        deployment.kill(doomed)
        deployment.orchestrator()  # the restarted replica
        deployment.worker()
        await _check_all(client, ids, tally, deployment)
    interrupted = await runs.check(client, ids, killed=[deployment.pid(doomed)])
    assert interrupted, "the kill landed on no running task body"
    await assert_rerun_as_lost(client, interrupted)
    after = [run for run in await runs.runs() if run.started > killed_at]
    assert after, "no work was left for the surviving processes"
    return ids


@pytest.mark.parametrize("seed", SEEDS)
async def test_broker_outage_is_survived(
    deployment: Deployment, client: Engine, runs: RunLog, seed: int
) -> None:
    moments = random.Random(seed)
    target = urlsplit(deployment.env["SPANE_AMQP_URL"])
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    port = await proxy.start()
    proxied = (
        f"amqp://{target.username}:{target.password}@127.0.0.1:{port}{target.path or '/'}"
        "?reconnect_interval=0.5"
    )
    deployment.env["CHAOS_SLEEP"] = BODIES
    try:
        deployment.orchestrator(env={"SPANE_AMQP_URL": proxied})
        worker = deployment.worker(env={"SPANE_AMQP_URL": proxied})
        await client.register(WORKFLOW)
        async with _tallying(client) as tally:
            ids = await _start_many(client, OUTAGE_EXECUTIONS)
            await asyncio.sleep(moments.uniform(0.0, 2.0))
            at_cut = await runs.wait_in_flight([deployment.pid(worker)], 3)
            proxy.refuse = True
            cut = proxy.cut()
            cut_at = time.time()
            await asyncio.sleep(moments.uniform(2.0, 5.0))
            restored_at = time.time()
            proxy.refuse = False
            await _check_all(client, ids, tally, deployment)
        # the outage hit both processes' connections while bodies ran, and results were
        # produced while the broker was unreachable (they had to wait for it)
        assert cut >= 4, f"only {cut} connection ends cut"  # both ends of 2 connections
        assert proxy.refused >= 1, "nothing tried to reconnect during the outage"
        assert len(at_cut) >= 3
        ended = [r for r in await runs.runs() if r.ended and cut_at < r.ended < restored_at]
        assert ended, "no task body finished during the outage"
        # nothing was killed: every attempt ran its body exactly once
        await runs.check(client, ids, killed=())
        lost = [
            (eid, node_id)
            for eid in ids
            for node_id, node in (await client.status(eid)).nodes.items()
            if node.lost
        ]
        assert not lost, f"attempts declared lost by a broker outage: {lost}"
    finally:
        # stop while the broker is reachable: in a thread, the proxy runs on this loop
        await asyncio.to_thread(deployment.stop_all, 10.0)
        await proxy.close()


async def test_a_duplicate_task_delivery_does_not_run_a_finished_attempt_again(
    deployment: Deployment, client: Engine, runs: RunLog
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
        await asyncio.sleep(2.0)
        assert [run.task for run in await runs.runs()].count(task_id) == 1
        again = await client.wait(result.execution_id, 5)
        assert (again.status, again.output) == (ExecutionStatus.SUCCEEDED, expected_output(4))
        assert not tally.applied_twice()
        await runs.check(client, [result.execution_id])
