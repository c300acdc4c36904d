"""Reads across the shards of a Redis Cluster deployment: listing and archive claims.

On a cluster every execution belongs to one of :data:`~spane.state.keys.CLUSTER_SHARDS`
shards, and the listing indexes and the to-archive queue are kept per shard (so that a
commit writes them atomically with the execution). A read that spans executions first
asks every shard, in one pipeline (the client sends each node its part at once), which
of its entries qualify, using only scores; it then runs the script only on the shards
that hold the best ``limit`` entries. On a single server there is one shard and the
script runs directly.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript

from spane.state.keys import ShardKeys
from spane.state.redis_calls import ScriptCall, run_each
from spane.state.redis_connect import AnyRedis


async def newest_per_shard(redis: AnyRedis, indexes: Sequence[str], limit: int) -> dict[int, int]:
    """How many of the ``limit`` newest entries over ``indexes`` (zsets by created_at)
    each index holds: index position -> count, only the positions that hold some."""
    async with redis.pipeline(transaction=False) as pipe:
        for index in indexes:
            pipe.zrevrange(index, 0, limit - 1, withscores=True)
        replies: list[list[tuple[Any, float]]] = await pipe.execute()
    best = heapq.nlargest(
        limit,
        ((score, position) for position, entries in enumerate(replies) for _, score in entries),
    )
    return _counts(position for _, position in best)


async def due_per_shard(
    redis: AnyRedis, queues: Sequence[str], now: float, limit: int
) -> dict[int, int]:
    """How many of the ``limit`` earliest due entries (score <= ``now``) over ``queues``
    each queue holds: queue position -> count, only the positions that hold some."""
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zrangebyscore(queue, "-inf", repr(now), start=0, num=limit, withscores=True)
        replies: list[list[tuple[Any, float]]] = await pipe.execute()
    best = heapq.nsmallest(
        limit,
        ((score, position) for position, entries in enumerate(replies) for _, score in entries),
    )
    return _counts(position for _, position in best)


def _counts(positions: Any) -> dict[int, int]:
    counts: dict[int, int] = {}
    for position in positions:
        counts[position] = counts.get(position, 0) + 1
    return counts


async def list_metas(
    redis: AnyRedis,
    script: AsyncScript,
    shards: Sequence[ShardKeys],
    workflow_id: str | None,
    limit: int,
) -> list[bytes]:
    """Up to ``limit`` ExecutionMeta JSON strings, newest first per shard (LIST_EXECUTIONS;
    the caller orders the union).

    The script prunes index entries whose execution expired; when a shard's chosen
    entries held such, the choice is made again over what is left, so expired
    executions never hide live ones (each round prunes at least one entry).
    """
    indexes = [
        shard.executions if workflow_id is None else shard.workflow_executions(workflow_id)
        for shard in shards
    ]
    while True:
        if len(shards) == 1:
            counts = {0: limit}
        else:
            counts = await newest_per_shard(redis, indexes, limit)
        calls: list[ScriptCall] = [
            ([indexes[p], shards[p].executions], [count, *shards[p].meta_affixes])
            for p, count in counts.items()
        ]
        replies = await run_each(redis, script, calls) if calls else []
        found = [raw for reply in replies for raw in reply]
        if len(shards) == 1 or len(found) == sum(counts.values()):
            return found


async def claim_due(
    redis: AnyRedis,
    script: AsyncScript,
    shards: Sequence[ShardKeys],
    now: float,
    limit: int,
    lease: float,
) -> list[str]:
    """Claim up to ``limit`` executions due for the archive (CLAIM_ARCHIVE), earliest
    first, from the shards that hold them."""
    queues = [shard.to_archive for shard in shards]
    counts = {0: limit} if len(shards) == 1 else await due_per_shard(redis, queues, now, limit)
    calls: list[ScriptCall] = [
        ([queues[p]], [repr(now), count, repr(now + lease)]) for p, count in counts.items()
    ]
    replies = await run_each(redis, script, calls) if calls else []
    return [raw.decode() for reply in replies for raw in reply]
