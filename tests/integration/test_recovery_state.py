"""A finished execution that runs again (a retry) in the state stores: it leaves the
archive queue, and the retention its archived keys had is over (Redis: the COMMIT
script's PERSIST; memory: it leaves retention). Finishing again queues it again."""

from __future__ import annotations

import pytest

from spane.schemas.state import ExecutionStatus, NodeStatus
from spane.state.base import StateStore
from spane.state.memory import MemoryStateStore
from spane.state.redis import RedisStateStore
from tests.integration.test_state_contract import (  # noqa: F401 (fixtures)
    RETENTION,
    clock,
    commit,
    loaded,
    new_view,
    redis_store,
    redis_url_of_kind,
    store,
)


async def _finish(target: StateStore, event: str, at: float) -> None:
    view = await loaded(target)
    view.update_meta(status=ExecutionStatus.FAILED, finished_at=at)
    assert await commit(target, view, event, [])


async def _run_again(target: StateStore, event: str) -> None:
    view = await loaded(target)
    view.update_meta(status=ExecutionStatus.RUNNING, finished_at=None, retries=1)
    assert await commit(target, view, event, [])


async def test_a_finished_execution_running_again_leaves_the_archive_queue(
    store: StateStore,  # noqa: F811
) -> None:
    assert await store.create(new_view(), "start", [])
    await _finish(store, "fail", 200.0)
    await _run_again(store, "retry")
    assert await store.claim_unarchived(1e12, 10, 30.0) == []
    await _finish(store, "fail-again", 300.0)
    assert await store.claim_unarchived(1e12, 10, 30.0) == ["ex-1"]


async def test_a_late_mark_of_an_execution_running_again_changes_nothing_in_memory() -> None:
    memory = MemoryStateStore(max_finished=1)
    assert await memory.create(new_view(), "start", [])
    await _finish(memory, "fail", 200.0)
    assert await memory.claim_unarchived(1e12, 10, 30.0) == ["ex-1"]
    await _run_again(memory, "retry")  # while the archiver holds it
    await memory.mark_archived(["ex-1"])
    for other in ("ex-2", "ex-3"):  # retention keeps one archived execution
        assert await memory.create(new_view(other, status=ExecutionStatus.FAILED), "start", [])
        await memory.mark_archived(await memory.claim_unarchived(1e12, 10, 30.0))
    assert (await loaded(memory)).meta.status == ExecutionStatus.RUNNING


async def test_memory_an_archived_execution_running_again_leaves_retention() -> None:
    memory = MemoryStateStore(max_finished=1)
    assert await memory.create(new_view(), "start", [])
    await _finish(memory, "fail", 200.0)
    await memory.mark_archived(await memory.claim_unarchived(1e12, 10, 30.0))
    await _run_again(memory, "retry")
    for other in ("ex-2", "ex-3"):
        assert await memory.create(new_view(other, status=ExecutionStatus.FAILED), "start", [])
        await memory.mark_archived(await memory.claim_unarchived(1e12, 10, 30.0))
    assert await memory.get_meta("ex-1") is not None
    assert await memory.get_meta("ex-2") is None  # retention did drop the others


async def _pttls(target: RedisStateStore) -> list[int]:
    return [await target.client.pttl(key) for key in target.keys.execution("ex-1").all()]


@pytest.mark.real
async def test_redis_an_archived_execution_running_again_no_longer_expires(
    redis_store: RedisStateStore,  # noqa: F811
) -> None:
    assert await redis_store.create(new_view(), "start", [])
    view = await loaded(redis_store)
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    assert await commit(redis_store, view, "a", [])  # every key exists
    await _finish(redis_store, "fail", 200.0)
    await redis_store.mark_archived(await redis_store.claim_unarchived(1e12, 10, 30.0))
    assert all(0 < ttl <= RETENTION * 1000 for ttl in await _pttls(redis_store))

    await _run_again(redis_store, "retry")
    assert await _pttls(redis_store) == [-1, -1, -1, -1]

    await _finish(redis_store, "fail-again", 300.0)
    assert await _pttls(redis_store) == [-1, -1, -1, -1]  # expires once archived again
    assert await redis_store.claim_unarchived(1e12, 10, 30.0) == ["ex-1"]


@pytest.mark.real
async def test_redis_a_late_mark_is_undone_by_the_next_commit(
    redis_store: RedisStateStore,  # noqa: F811
) -> None:
    assert await redis_store.create(new_view(), "start", [])
    await _finish(redis_store, "fail", 200.0)
    assert await redis_store.claim_unarchived(1e12, 10, 30.0) == ["ex-1"]
    await _run_again(redis_store, "retry")  # while the archiver holds it
    await redis_store.mark_archived(["ex-1"])
    assert (await _pttls(redis_store))[0] > 0
    view = await loaded(redis_store)
    view.update_node("a", status=NodeStatus.RUNNING)
    assert await commit(redis_store, view, "next", [])
    assert (await _pttls(redis_store))[0] == -1
