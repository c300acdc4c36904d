"""The kill -9 guarantee test with the state on a 3-master Redis Cluster (started on
loopback by the test setup, :mod:`tests.redis_cluster`): every script and transaction of
the state store must stay on one slot (an untagged multi-key script fails there with
CROSSSLOT), and recovery must work the same as on one server."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from spane import Engine
from spane.state.redis import RedisStateStore
from tests.chaos.conftest import WORKFLOW, Deployment, client_for
from tests.chaos.runs import RunLog, assert_rerun_as_lost
from tests.chaos.test_guarantees import BODIES, EXECUTIONS, _check_all, _start_many, _tallying

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_kill_9_an_orchestrator_and_a_worker_mid_run_on_a_redis_cluster(
    cluster_deployment: Deployment,
) -> None:
    deployment = cluster_deployment
    deployment.env["CHAOS_SLEEP"] = BODIES
    first = deployment.orchestrator()
    deployment.orchestrator()
    doomed = deployment.worker()
    deployment.worker()
    client: Engine = client_for(deployment)
    runs = RunLog(deployment.env["CHAOS_RUNS_REDIS_URL"], deployment.namespace.name)
    await client.open()
    try:
        assert isinstance(client.state, RedisStateStore)
        assert client.state.keys.cluster
        await client.register(WORKFLOW)
        async with _tallying(client) as tally:
            ids = await _start_many(client, EXECUTIONS)
            await asyncio.sleep(random.Random(7).uniform(0.0, 3.0))
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
        listed = {meta.id for meta in await client.state.list_executions("chaos", limit=100)}
        assert listed == set(ids)  # the listing spans every shard of the cluster
    finally:
        await client.close()
        await runs.close()
