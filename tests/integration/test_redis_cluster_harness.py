"""The Redis Cluster harness (:mod:`tests.redis_cluster`): three masters cover every slot,
an untagged multi-key script fails with CROSSSLOT while a hash-tagged one works, and
:func:`~tests.redis_cluster.ensure_redis_cluster` reuses running nodes."""

from __future__ import annotations

import os

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ClusterCrossSlotError

from tests.redis_cluster import (
    HOST,
    SLOTS,
    cluster_ports,
    ensure_redis_cluster,
    redis_py_url,
    unlink_cluster_namespace,
)
from tests.servers import Namespace

pytestmark = pytest.mark.real

SET_BOTH = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('MGET', KEYS[1], KEYS[2])
"""


async def test_three_masters_cover_every_slot(redis_cluster_url: str) -> None:
    client = RedisCluster.from_url(redis_py_url(redis_cluster_url))
    try:
        await client.initialize()
        primaries = client.get_primaries()
        assert len(primaries) == 3
        assert client.get_replicas() == []
        assert set(client.nodes_manager.slots_cache) == set(range(SLOTS))
        for primary in primaries:
            info = await client.cluster_info(target_nodes=primary)
            assert info["cluster_state"] == "ok"
            assert int(info["cluster_slots_ok"]) == SLOTS
            assert int(info["cluster_size"]) == 3
    finally:
        await client.aclose()


async def test_untagged_keys_cross_slots_tagged_keys_share_one(redis_cluster_url: str) -> None:
    namespace = Namespace.new().name
    first = f"{namespace}:a"
    second = next(
        key
        for key in (f"{namespace}:b{i}" for i in range(100))
        if key_slot(key.encode()) != key_slot(first.encode())
    )
    untagged = [first, second]
    tagged = [f"{{{namespace}}}:a", f"{{{namespace}}}:b"]
    client = RedisCluster.from_url(redis_py_url(redis_cluster_url))
    try:
        await client.initialize()
        owner = client.get_node_from_key(untagged[0])
        assert owner is not None
        node = redis.asyncio.Redis(host=owner.host, port=int(owner.port))
        try:
            with pytest.raises(ClusterCrossSlotError):  # the server's CROSSSLOT error
                await node.execute_command("EVAL", SET_BOTH, 2, *untagged, "v")
        finally:
            await node.aclose()

        assert await client.eval(SET_BOTH, 2, *tagged, "v") == [b"v", b"v"]
        await client.set(untagged[0], "v")
        await client.set(untagged[1], "v")
    finally:
        await client.aclose()

    await unlink_cluster_namespace(redis_cluster_url, namespace)
    client = RedisCluster.from_url(redis_py_url(redis_cluster_url))
    try:
        assert await client.exists(*tagged) == 0
        assert await client.exists(untagged[0]) == 0
        assert await client.exists(untagged[1]) == 0
    finally:
        await client.aclose()


def _run_ids() -> dict[int, str]:
    run_ids: dict[int, str] = {}
    for port in cluster_ports():
        node = redis.Redis(host=HOST, port=port)
        try:
            run_ids[port] = str(node.info("server")["run_id"])
        finally:
            node.close()
    return run_ids


def test_ensure_twice_reuses_the_running_nodes(redis_cluster_url: str) -> None:
    if os.environ.get("SPANE_TEST_REDIS_CLUSTER_URL"):
        pytest.skip("SPANE_TEST_REDIS_CLUSTER_URL names an external cluster")
    before = _run_ids()
    first = ensure_redis_cluster()
    second = ensure_redis_cluster()
    assert first == second == redis_cluster_url
    assert _run_ids() == before
