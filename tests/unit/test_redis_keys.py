"""The Redis key layout (:mod:`spane.state.keys`) and the client a URL selects
(:mod:`spane.state.redis_connect`): on a cluster every key a script or transaction
touches together hashes to one slot."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from spane.core.ids import task_id
from spane.schemas.durations import parse_duration
from spane.schemas.state import Timer, TimerKind
from spane.state.keys import CLUSTER_SHARDS, RedisKeys
from spane.state.redis_codec import timer_args
from spane.state.redis_connect import client_for, is_cluster_url

EXECUTIONS = ["ex-1", "order-42", "a:b:c", "wf.node.3.2", "0190d9f2-7b1c-7cc2-9e35-2f1f4c1d5a90"]


def _slot(key: str) -> int:
    return key_slot(key.encode())


@pytest.mark.parametrize("execution_id", EXECUTIONS)
def test_on_a_cluster_an_execution_its_indexes_and_its_claims_share_one_slot(execution_id: str):
    keys = RedisKeys("spane", CLUSTER_SHARDS)
    own = keys.execution(execution_id)
    together = [
        *own.expiring(),
        own.shard.executions,
        own.shard.workflow_executions("wf"),
        own.shard.to_archive,
        own.shard.timers,
        own.shard.timer_data,
        keys.claim(task_id(execution_id, "node_1", 3)),
    ]
    assert {_slot(key) for key in together} == {_slot(own.meta)}
    assert keys.timer_shard(execution_id) == own.shard


def test_cluster_shards_spread_over_many_slots_and_are_stable():
    keys = RedisKeys("spane", CLUSTER_SHARDS)
    slots = {_slot(shard.to_archive) for shard in keys.all_shards()}
    assert len(keys.all_shards()) == CLUSTER_SHARDS
    assert len(slots) == CLUSTER_SHARDS
    tags = {keys.shard_tag(f"ex-{i}") for i in range(5000)}
    assert len(tags) == CLUSTER_SHARDS  # every shard gets executions
    # pinned: a stored execution must map to the same shard in every release
    assert (keys.shard_tag("ex-1"), keys.shard_tag("order-42")) == ("s16", "s222")
    assert keys.shard_tag("ex-1") == RedisKeys("other", CLUSTER_SHARDS).shard_tag("ex-1")


def test_one_server_keeps_the_layout_of_earlier_releases():
    keys = RedisKeys("spane")
    own = keys.execution("ex-1")
    assert own.meta == "spane:{ex-1}:meta"
    assert (own.shard.executions, own.shard.to_archive) == ("spane:executions", "spane:to-archive")
    assert own.shard.workflow_executions("wf") == "spane:executions:wf"
    assert keys.claim("ex-1:a:1") == "spane:claim:ex-1:a:1"
    assert (own.shard.timers, own.shard.timer_data) == ("spane:timers", "spane:timer-data")
    assert keys.all_shards() == [own.shard]
    prefix, suffix = own.shard.meta_affixes
    assert prefix + "ex-1" + suffix == own.meta


def test_a_cluster_shards_meta_affixes_make_the_meta_key():
    keys = RedisKeys("spane", CLUSTER_SHARDS)
    own = keys.execution("ex-1")
    prefix, suffix = own.shard.meta_affixes
    assert prefix + "ex-1" + suffix == own.meta


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("redis://127.0.0.1:6379/0", False),
        ("rediss://:pw@redis.example:6380/2", False),
        ("redis+cluster://127.0.0.1:7101/", True),
        ("rediss+cluster://:pw@redis.example:6380", True),
        ("redis+cluster://127.0.0.1:7101/0", True),
    ],
)
async def test_the_url_scheme_selects_the_client(url: str, cluster: bool):
    assert is_cluster_url(url) is cluster
    client = client_for(url)
    try:
        assert isinstance(client, RedisCluster if cluster else Redis)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis+cluster://127.0.0.1:7101/3", "only database 0"),
        ("redis+cluster:///", "needs a host"),
    ],
)
def test_a_bad_cluster_url_is_refused_with_what_is_wrong(url: str, words: str):
    with pytest.raises(ValueError, match=words):
        client_for(url)


def test_on_a_cluster_no_execution_key_is_a_shard_index_key():
    keys = RedisKeys("spane", CLUSTER_SHARDS)
    for execution_id in ("executions", "to-archive", "timers", "claim", "e"):
        own = keys.execution(execution_id)
        shard = own.shard
        indexes = {shard.executions, shard.to_archive, shard.timers, shard.timer_data}
        indexes |= {shard.workflow_executions(wf) for wf in ("meta", "nodes", "loops", "e")}
        indexes.add(keys.claim(f"{execution_id}:a:1"))
        assert not set(own.expiring()) & indexes


@pytest.mark.parametrize("fire_at", [float("nan"), float("inf"), float("-inf")])
def test_a_timer_that_fires_at_no_time_is_refused_before_it_reaches_redis(fire_at: float):
    timer = Timer(id="delay:e:n:0", execution_id="e", kind=TimerKind.DELAY, fire_at=fire_at)
    with pytest.raises(ValueError, match="not a time"):
        timer_args([], [timer])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), ".nan"])
def test_a_duration_must_be_finite(value: object):
    with pytest.raises(ValueError, match=r"finite|invalid duration"):
        parse_duration(value)
