"""Claims, their renewal and the liveness check, against real worker processes
(docs/operations.md, "Worker crashes"): a task longer than the lease is not lost while
its worker renews; a worker that stops renewing (SIGSTOP: alive, connected, silent)
loses its attempt to another worker; a task that kills its worker every time fails its
node with ``WorkerLost`` after five losses."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from spane import Engine, ExecutionStatus
from spane.bus.rabbit import HEARTBEAT
from spane.core.handlers import MAX_LOST_ATTEMPTS
from spane.schemas.events import LifecycleEvent
from tests.chaos.conftest import Deployment
from tests.chaos.runs import RunLog

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(120)]

LEASE = 2.0
LIVENESS = 1.0

LONG: dict[str, Any] = {
    "id": "chaos-long",
    "nodes": [{"id": "long", "function": "chaos.sleep", "input": {"seconds": "${ input.s }"}}],
}
DIE: dict[str, Any] = {"id": "chaos-die", "nodes": [{"id": "die", "function": "chaos.die"}]}


class NodeEvents:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    async def on_event(self, routing_key: str, event: LifecycleEvent) -> None:
        self.statuses.append(str(event.data.get("status")))


async def _node_events(client: Engine) -> NodeEvents:
    events = NodeEvents()
    await client.subscribe("node.#", events.on_event)
    return events


async def wait_consumers(client: Engine, count: int, timeout: float = 30.0) -> None:
    """Until ``count`` workers consume the function pool's queue."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = await client.bus.pool_stats(["function"])
        if stats["function"].consumers == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {count} consumers after {timeout}s")


async def _node(client: Engine, execution_id: str, node_id: str) -> Any:
    return (await client.status(execution_id)).nodes[node_id]


async def _wait_lost(client: Engine, execution_id: str) -> float:
    """Until the node ``long`` has lost an attempt; how long that took."""
    began = time.monotonic()
    while (await _node(client, execution_id, "long")).lost == 0:
        assert time.monotonic() - began < 30, "the stopped worker's attempt was never lost"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


async def test_a_task_longer_than_the_lease_is_not_lost_while_its_worker_renews(
    deployment: Deployment, client: Engine, runs: RunLog
) -> None:
    deployment.timing(lease=LEASE, liveness=LIVENESS)
    deployment.orchestrator()
    one, two = deployment.worker(), deployment.worker()  # a false loss would re-run on two
    await wait_consumers(client, 2)
    await client.register(LONG)
    events = await _node_events(client)
    execution_id = await client.start("chaos-long", {"s": 3.5 * LEASE})
    result = await client.wait(execution_id, 60)
    await asyncio.sleep(2 * LIVENESS)  # a late liveness verdict, if any, lands now
    assert result.status == ExecutionStatus.SUCCEEDED, result
    assert result.output["attempt"] == 1
    node = await _node(client, execution_id, "long")
    assert (node.status, node.attempt, node.lost, node.error) == ("succeeded", 1, 0, None)
    assert "retrying" not in events.statuses, events.statuses
    [run] = await runs.runs()  # one run, on one of the workers, to its end
    assert run.task == f"{execution_id}:long:1"
    assert run.ended is not None
    assert run.ended - run.started >= 3.5 * LEASE
    assert run.pid in (deployment.pid(one), deployment.pid(two))


async def test_a_worker_that_stops_renewing_loses_its_attempt_to_another(
    deployment: Deployment, client: Engine, runs: RunLog
) -> None:
    """SIGSTOP the worker running a task: it keeps its connection (and its claim's last
    renewal) but renews nothing, so the liveness check must declare the attempt lost
    and a second attempt run on the other worker. Then SIGCONT: the stopped worker
    finishes its stale attempt, whose result must change nothing.

    Both workers use a 3 s AMQP heartbeat: a stopped worker still holds the deliveries
    the broker pushed to it (the second attempt's, half the time) until the broker drops
    its connection for missed heartbeats; with SPANE's default of 10 s that takes about
    20-30 s (``test_a_rerun_is_not_held_by_the_stopped_worker``), too long for this
    test's bound."""
    deployment.timing(lease=LEASE, liveness=LIVENESS)
    url = deployment.env["SPANE_AMQP_URL"]
    fast = {"SPANE_AMQP_URL": url + ("&" if "?" in url else "?") + "heartbeat=3"}
    deployment.orchestrator()
    workers = {deployment.pid(n): n for n in (deployment.worker(fast), deployment.worker(fast))}
    await wait_consumers(client, 2)
    await client.register(LONG)
    execution_id = await client.start("chaos-long", {"s": 4.0})
    [first] = await runs.wait_in_flight(None, 1)
    stopped = workers[first.pid]
    [other] = [pid for pid in workers if pid != first.pid]
    deployment.signal(stopped, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        lost_after = await _wait_lost(client, execution_id)
        print(f"\nSIGSTOP -> attempt declared lost: {lost_after:.1f}s")
        assert lost_after <= LEASE + LIVENESS + 5.0
        result = await client.wait(execution_id, 60)
        assert result.status == ExecutionStatus.SUCCEEDED, result
        assert result.output == {"attempt": 2, "pid": other}
    finally:
        deployment.signal(stopped, signal.SIGCONT)
    # the stopped worker wakes up, finishes attempt 1 and publishes its stale result
    deadline = time.monotonic() + 20
    while not (done := [r for r in await runs.runs() if r.pid == first.pid and r.ended]):
        assert time.monotonic() < deadline, "the resumed worker never finished attempt 1"
        await asyncio.sleep(0.1)
    assert done[0].ended is not None
    assert done[0].ended > stopped_at + lost_after, "attempt 1 was not stopped mid-body"
    await asyncio.sleep(1.0)  # its result reaches the orchestrator
    node = await _node(client, execution_id, "long")
    assert (node.status, node.attempt, node.lost) == ("succeeded", 2, 1)
    assert node.output == {"attempt": 2, "pid": other}
    assert node.error is None or node.error.type == "WorkerLost"
    by_task = sorted((r.task, r.pid) for r in await runs.runs())
    assert by_task == [
        (f"{execution_id}:long:1", first.pid),
        (f"{execution_id}:long:2", other),
    ], by_task


async def test_a_rerun_is_not_held_by_the_stopped_worker(
    deployment: Deployment, client: Engine, runs: RunLog
) -> None:
    """The worker that ran the lost attempt is hung (SIGSTOP, connection kept, default
    AMQP heartbeat) when the second attempt is dispatched; a healthy worker joins. The
    broker pushes the second attempt to the hung worker's free prefetch; it gets it back
    when it drops that connection for missed heartbeats (SPANE sets a 10 s heartbeat,
    HEARTBEAT), so the second attempt runs on the healthy worker within lease + liveness
    + a few heartbeats (docs/operations.md, "Worker crashes")."""
    deployment.timing(lease=LEASE, liveness=LIVENESS)
    deployment.orchestrator()
    hung = deployment.worker()
    await wait_consumers(client, 1)
    await client.register(LONG)
    execution_id = await client.start("chaos-long", {"s": 4.0})
    await runs.wait_in_flight([deployment.pid(hung)], 1)
    deployment.signal(hung, signal.SIGSTOP)
    try:
        await _wait_lost(client, execution_id)
        healthy = deployment.worker()
        await wait_consumers(client, 2)
        result = await client.wait(execution_id, LEASE + LIVENESS + 3 * HEARTBEAT + 5.0)
        assert result.output == {"attempt": 2, "pid": deployment.pid(healthy)}
    finally:
        deployment.signal(hung, signal.SIGCONT)


async def test_five_lost_attempts_fail_the_node_with_worker_lost(
    deployment: Deployment, client: Engine, runs: RunLog
) -> None:
    """chaos.die kills its worker (os._exit) every time; a supervisor restarts a worker
    each time one dies. After MAX_LOST_ATTEMPTS (5) losses the node fails with
    WorkerLost, and nothing runs after that."""
    deployment.timing(lease=LEASE, liveness=LIVENESS)
    deployment.orchestrator()
    await client.register(DIE)
    workers = [deployment.worker()]

    async def supervise() -> None:
        while True:
            if deployment.processes[workers[-1]].poll() is not None:
                workers.append(deployment.worker())
            await asyncio.sleep(0.1)

    supervisor = asyncio.create_task(supervise())
    try:
        execution_id = await client.start("chaos-die")
        result = await client.wait(execution_id, 90)
        await asyncio.sleep(LEASE + 2 * LIVENESS)  # a 6th attempt, if any, would start now
    finally:
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
    assert result.status == ExecutionStatus.FAILED, result
    assert result.error is not None
    assert result.error.type == "WorkerLost", result.error
    node = await _node(client, execution_id, "die")
    assert (node.status, node.attempt) == ("failed", MAX_LOST_ATTEMPTS), node
    assert node.error is not None
    assert node.error.type == "WorkerLost", node.error
    assert f"{MAX_LOST_ATTEMPTS} attempts lost their worker" in node.error.message
    done = await runs.runs()
    # each attempt ran once, each on its own worker, which it killed
    assert [r.task for r in done] == [f"{execution_id}:die:{n}" for n in range(1, 6)], done
    assert len({r.pid for r in done}) == MAX_LOST_ATTEMPTS
    assert all(r.ended is None for r in done)
    dead = [deployment.processes[name].returncode for name in workers[:MAX_LOST_ATTEMPTS]]
    assert dead == [17] * MAX_LOST_ATTEMPTS, dead
