"""Crashes under the settings a deployment runs with by default (``SPANE_TASK_LEASE`` and
``SPANE_LIVENESS`` unset: 10 s and 5 s), not the short ones of the other chaos tests:
kill -9 a worker with task bodies running, then every process; every execution must
still finish (the per-test timeout is the bound), with no attempt run twice but those
the kill interrupted. Each prints the time from the kill to the last execution finished.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from spane import Engine, ExecutionStatus
from tests.chaos.conftest import WORKFLOW, Deployment, expected_output
from tests.chaos.runs import RunLog, assert_rerun_as_lost
from tests.chaos.test_leases import wait_consumers

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(150)]

EXECUTIONS = 20
FINISH_WITHIN = 100.0
"""Seconds from the kill: far more than lease + liveness (15 s) and the work (~5 s)."""


async def _start(client: Engine) -> dict[str, int]:
    await client.register(WORKFLOW)
    return {await client.start("chaos", {"n": n}): n for n in range(EXECUTIONS)}


async def _finish(
    client: Engine, deployment: Deployment, ids: dict[str, int], since: float, what: str
) -> None:
    try:
        results = await asyncio.gather(*(client.wait(eid, FINISH_WITHIN) for eid in ids))
    except TimeoutError:
        stuck = {}
        for eid in ids:
            snapshot = await client.status(eid)
            if snapshot.meta.status == ExecutionStatus.RUNNING:
                stuck[eid] = {
                    node_id: (node.status, node.attempt, node.lost)
                    for node_id, node in snapshot.nodes.items()
                    if node.status != "succeeded"
                }
        pytest.fail(
            f"{len(stuck)} execution(s) unfinished {FINISH_WITHIN}s after the {what}: "
            f"{list(stuck.items())[:5]}\n{deployment.log_tail()}"
        )
    print(f"\n{what} -> all {len(ids)} executions finished: {time.monotonic() - since:.1f}s")
    wrong = [
        (r.execution_id, r.status, r.output)
        for r in results
        if r.status != ExecutionStatus.SUCCEEDED or r.output != expected_output(ids[r.execution_id])
    ]
    assert not wrong, wrong


async def test_a_worker_killed_mid_task_with_the_default_lease_and_liveness(
    deployment: Deployment, client: Engine, runs: RunLog
) -> None:
    deployment.timing(lease=None, liveness=None)
    deployment.env["CHAOS_SLEEP"] = "0.3,1.0"
    deployment.orchestrator()
    doomed = deployment.worker()
    deployment.worker()
    await wait_consumers(client, 2)
    ids = await _start(client)
    await runs.wait_in_flight([deployment.pid(doomed)], 3)
    deployment.kill(doomed)
    killed_at = time.monotonic()
    await _finish(client, deployment, ids, killed_at, "worker kill -9")
    interrupted = await runs.check(client, ids, killed=[deployment.pid(doomed)])
    assert interrupted, "the kill landed on no running task body"
    await assert_rerun_as_lost(client, interrupted)


async def test_crash_recovery_of_every_process_with_the_default_settings(
    deployment: Deployment, client: Engine, runs: RunLog
) -> None:
    deployment.timing(lease=None, liveness=None)
    deployment.env["CHAOS_SLEEP"] = "0.3,1.0"
    deployment.orchestrator()
    worker = deployment.worker()
    await wait_consumers(client, 1)
    ids = await _start(client)
    await runs.wait_in_flight([deployment.pid(worker)], 3)
    killed = [deployment.pid(name) for name in deployment.alive()]
    for name in deployment.alive():
        deployment.kill(name)
    killed_at = time.monotonic()
    deployment.orchestrator()
    deployment.worker()
    await _finish(client, deployment, ids, killed_at, "kill -9 of every process")
    interrupted = await runs.check(client, ids, killed=killed)
    assert interrupted, "the kill landed on no running task body"
