"""Tasks run by the worker processes of the chaos tests.

Each call counts itself in Redis (``<namespace>:runs:<task id>``), so a test can tell
how many times an attempt really ran across processes.
"""

from __future__ import annotations

import asyncio
import os
import random

from redis.asyncio import Redis

import spane

_redis: Redis | None = None


def _client() -> Redis:
    global _redis
    if _redis is None:
        _redis = Redis.from_url(os.environ["SPANE_REDIS_URL"])
    return _redis


async def _count(ctx: spane.TaskContext) -> None:
    namespace = os.environ.get("SPANE_NAMESPACE", "spane")
    await _client().incr(f"{namespace}:runs:{ctx.idempotency_key}")


@spane.task("chaos.add")
async def add(data: dict[str, int], ctx: spane.TaskContext) -> int:
    await _count(ctx)
    await asyncio.sleep(random.uniform(0.02, 0.15))
    return data["x"] + data["y"]


@spane.task("chaos.mul")
async def mul(data: dict[str, int], ctx: spane.TaskContext) -> int:
    await _count(ctx)
    await asyncio.sleep(random.uniform(0.02, 0.15))
    return data["x"] * data["y"]
