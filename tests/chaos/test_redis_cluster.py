"""The kill -9 guarantee test with the state on a 3-master Redis Cluster (started on
loopback by the test setup, :mod:`tests.redis_cluster`): every script and transaction of
the state store must stay on one slot (an untagged multi-key script fails there with
CROSSSLOT), and recovery must work the same as on one server."""

from __future__ import annotations

import pytest

from spane import Engine
from spane.state.redis import RedisStateStore
from tests.chaos.conftest import Deployment, client_for
from tests.chaos.runs import RunLog
from tests.chaos.test_guarantees import kill_mid_run

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_kill_9_an_orchestrator_and_a_worker_mid_run_on_a_redis_cluster(
    cluster_deployment: Deployment,
) -> None:
    deployment = cluster_deployment
    client: Engine = client_for(deployment)
    runs = RunLog(deployment.env["CHAOS_RUNS_REDIS_URL"], deployment.namespace.name)
    await client.open()
    try:
        assert isinstance(client.state, RedisStateStore)
        assert client.state.keys.cluster
        ids = await kill_mid_run(deployment, client, runs, seed=7)
        listed = {meta.id for meta in await client.state.list_executions("chaos", limit=100)}
        assert listed == set(ids)  # the listing spans every shard of the cluster
    finally:
        await client.close()
        await runs.close()
