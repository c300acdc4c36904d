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
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from redis.commands.core import AsyncScript

from spane.state.keys import ShardKeys
from spane.state.redis_calls import ScriptCall, run_each
from spane.state.redis_connect import AnyRedis


async def newest_per_shard(redis: AnyRedis, indexes: Sequence[str], limit: int) -> dict[int, int]:
    """How many of the ``limit`` newest entries over ``indexes`` (zsets by created_at)
    each index holds: index position -> count, only the positions that hold some."""
    return await _best_per_shard(redis, indexes, limit, "+inf", newest=True)


async def due_per_shard(
    redis: AnyRedis, queues: Sequence[str], now: float, limit: int
) -> dict[int, int]:
    """How many of the ``limit`` earliest due entries (score <= ``now``) over ``queues``
    each queue holds: queue position -> count, only the positions that hold some."""
    return await _best_per_shard(redis, queues, limit, repr(now), newest=False)


async def _best_per_shard(
    redis: AnyRedis, zsets: Sequence[str], limit: int, highest: str, *, newest: bool
) -> dict[int, int]:
    """Where the ``limit`` best entries scored up to ``highest`` over ``zsets`` are (the
    highest scores if ``newest``, else the lowest): position -> count. Each zset gives
    at most its own ``limit`` best, by score only, in one pipeline."""
    bounds = (highest, "-inf") if newest else ("-inf", highest)  # REV takes the max first
    async with redis.pipeline(transaction=False) as pipe:
        for zset in zsets:
            pipe.zrange(
                zset, *bounds, desc=newest, byscore=True, offset=0, num=limit, withscores=True
            )
        replies: list[list[tuple[Any, float]]] = await pipe.execute()
    scored = ((score, position) for position, entries in enumerate(replies) for _, score in entries)
    best = heapq.nlargest(limit, scored) if newest else heapq.nsmallest(limit, scored)
    return dict(Counter(position for _, position in best))


async def list_metas(
    redis: AnyRedis,
    script: AsyncScript,
    shards: Sequence[ShardKeys],
    workflow_id: str | None,
    limit: int,
) -> list[tuple[bytes, bytes | None]]:
    """Up to ``limit`` (ExecutionMeta JSON, input JSON or None) pairs, newest first per
    shard (LIST_EXECUTIONS; the caller orders the union).

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
        found = [(raw[0], raw[1]) for reply in replies for raw in reply]
        if len(shards) == 1 or len(found) == sum(counts.values()):
            return found


async def claim_due(
    redis: AnyRedis,
    script: AsyncScript,
    shards: Sequence[ShardKeys],
    keys_of: Callable[[ShardKeys], list[str]],
    now: float,
    limit: int,
    lease: float,
) -> list[Any]:
    """Claim up to ``limit`` due entries, earliest first, from the shards that hold them:
    ``script`` (CLAIM_ARCHIVE, CLAIM_TIMERS) runs on ``keys_of(shard)``, whose first key
    is the zset scored by due time, with ARGV now, limit, lease end; its replies, joined."""
    keys = [keys_of(shard) for shard in shards]
    if len(shards) == 1:
        counts = {0: limit}
    else:
        counts = await due_per_shard(redis, [k[0] for k in keys], now, limit)
    calls: list[ScriptCall] = [
        (keys[p], [repr(now), count, repr(now + lease)]) for p, count in counts.items()
    ]
    replies = await run_each(redis, script, calls) if calls else []
    return [item for reply in replies for item in reply]


async def earliest(redis: AnyRedis, zsets: Sequence[str]) -> float | None:
    """The lowest score over ``zsets`` (None if all are empty), in one pipeline."""
    async with redis.pipeline(transaction=False) as pipe:
        for zset in zsets:
            pipe.zrange(zset, 0, 0, withscores=True)
        replies: list[list[tuple[Any, float]]] = await pipe.execute()
    scores = [float(first[0][1]) for first in replies if first]
    return min(scores) if scores else None
