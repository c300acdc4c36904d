"""Tasks run by the worker processes of the chaos tests.

Every task body records its run in Redis, durably and before it does anything else: a
``start`` entry when it begins and an ``end`` entry when it is done, each with the task
id (``ctx.idempotency_key``: ``<execution>:<node>:<attempt>``) and the worker's pid, on
the list ``<namespace>:chaos:runs`` (:mod:`tests.chaos.runs` reads it). So a test can
tell which attempts were inside their body when it killed a worker, and how many times
each attempt really ran, across processes.

``CHAOS_RUNS_REDIS_URL`` (default: ``SPANE_REDIS_URL``) is where the entries go, so a
test that restarts the deployment's Redis keeps its record elsewhere; ``CHAOS_SLEEP``
(``"low,high"`` seconds, default ``0.02,0.15``) is how long ``chaos.add`` / ``chaos.mul``
take, so a kill can land inside bodies.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any

from redis.asyncio import Redis

import spane

_redis: Redis | None = None


def runs_key(namespace: str) -> str:
    return f"{namespace}:chaos:runs"


def _client() -> Redis:
    global _redis
    if _redis is None:
        url = os.environ.get("CHAOS_RUNS_REDIS_URL") or os.environ["SPANE_REDIS_URL"]
        _redis = Redis.from_url(url)
    return _redis


async def _record(ctx: spane.TaskContext, phase: str) -> None:
    namespace = os.environ.get("SPANE_NAMESPACE", "spane")
    entry = {"task": ctx.idempotency_key, "pid": os.getpid(), "phase": phase, "at": time.time()}
    await _client().rpush(runs_key(namespace), json.dumps(entry))


def _pause() -> float:
    low, high = (float(part) for part in os.environ.get("CHAOS_SLEEP", "0.02,0.15").split(","))
    return random.uniform(low, high)


@spane.task("chaos.add")
async def add(data: dict[str, int], ctx: spane.TaskContext) -> int:
    await _record(ctx, "start")
    await asyncio.sleep(_pause())
    await _record(ctx, "end")
    return data["x"] + data["y"]


@spane.task("chaos.mul")
async def mul(data: dict[str, int], ctx: spane.TaskContext) -> int:
    await _record(ctx, "start")
    await asyncio.sleep(_pause())
    await _record(ctx, "end")
    return data["x"] * data["y"]


@spane.task("chaos.sleep")
async def sleep(data: dict[str, float], ctx: spane.TaskContext) -> dict[str, Any]:
    """Sleeps ``data["seconds"]``; says which attempt, on which worker, finished."""
    await _record(ctx, "start")
    await asyncio.sleep(data["seconds"])
    await _record(ctx, "end")
    return {"attempt": ctx.attempt, "pid": os.getpid()}


@spane.task("chaos.die")
async def die(data: Any, ctx: spane.TaskContext) -> None:
    """Kills its own worker (no shutdown, no result), every time it runs."""
    await _record(ctx, "start")
    await asyncio.sleep(0.3)  # the task message's ack (sent once claimed) leaves first
    os._exit(17)
