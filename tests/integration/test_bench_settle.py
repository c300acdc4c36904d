"""The bench waits for a deployment's archive to catch up before each workload."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench.deploy import archive_settled, delete_redis_namespace
from spane import Engine
from spane.state.redis import RedisStateStore


@pytest.mark.real
async def test_settling_waits_until_the_to_archive_queue_is_empty(redis_url: str) -> None:
    namespace = f"spanetest-{uuid.uuid4().hex[:8]}"
    store = RedisStateStore(redis_url, namespace=namespace)
    await store.connect()
    engine = cast(Engine, SimpleNamespace(state=store))
    (shard,) = store.keys.all_shards()
    try:
        assert await archive_settled(engine, timeout=5.0) < 0.5  # nothing queued
        await store.client.zadd(shard.to_archive, {"ex-1": 1.0})

        async def archive_later() -> Any:
            await asyncio.sleep(0.4)
            return await store.client.zrem(shard.to_archive, "ex-1")

        began = time.perf_counter()
        waited, removed = await asyncio.gather(archive_settled(engine, 5.0), archive_later())
        assert removed == 1
        assert 0.4 <= waited <= time.perf_counter() - began < 2.0
        await store.client.zadd(shard.to_archive, {"ex-2": 1.0})
        assert 0.3 <= await archive_settled(engine, timeout=0.3) < 1.0  # gives up in time
    finally:
        await store.close()
        await delete_redis_namespace(redis_url, namespace)
