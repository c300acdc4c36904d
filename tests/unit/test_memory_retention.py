"""The embedded stores keep bounded history: finished executions and archive records."""

from __future__ import annotations

from spane import Engine, TaskRegistry
from spane.schemas.state import ExecutionMeta, ExecutionStatus
from spane.schemas.view import ExecutionView
from spane.state.base import ClaimRequest
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore


def _meta(execution_id: str, status: ExecutionStatus = ExecutionStatus.RUNNING) -> ExecutionMeta:
    return ExecutionMeta(id=execution_id, workflow_id="w", version=1, created_at=0.0, status=status)


async def test_only_the_most_recent_archived_executions_are_kept() -> None:
    store = MemoryStateStore(max_finished=2)
    for name in ("e1", "e2", "e3", "live"):
        view = ExecutionView(_meta(name), {})
        assert await store.create(view, "start", [])
        if name != "live":
            view.update_meta(status=ExecutionStatus.SUCCEEDED)
            assert await store.commit_each([(view, {"finish": []})]) == [True]
    assert await store.get_meta("e1") is not None  # finished, not archived yet: kept
    assert sorted(await store.claim_unarchived(1.0, 10, 30.0)) == ["e1", "e2", "e3"]
    await store.mark_archived(["e1", "e2", "e3"])
    assert await store.get_meta("e1") is None
    assert [await store.get_meta(n) is not None for n in ("e2", "e3", "live")] == [True] * 3


async def test_a_retired_executions_task_claims_go_with_it_and_no_other() -> None:
    store = MemoryStateStore(max_finished=1)
    for name in ("a:b", "a"):  # "a:b:n:1" starts with "a:": only its own id counts
        view = ExecutionView(_meta(name, ExecutionStatus.SUCCEEDED), {})
        assert await store.create(view, "start", [])
        await store.claim_tasks([ClaimRequest(f"{name}:n:1", "w", 10.0)])
        await store.cancel_tasks([f"{name}:m:1"])
    await store.mark_archived(["a"])
    await store.mark_archived(["a:b"])  # retires "a" (retention 1)
    assert await store.get_claim("a:n:1") is None
    assert await store.get_claim("a:m:1") is None
    assert await store.get_claim("a:b:n:1") is not None
    assert store._claims_of.keys() == {"a:b"}


async def test_archive_is_bounded() -> None:
    store = MemoryDefinitionStore(max_archived=2)
    for name in ("a", "b", "c"):
        await store.archive({"id": name})
    assert await store.get_archived("a") is None
    assert await store.get_archived("c") == {"id": "c"}


async def test_executions_finished_when_created_are_retired_too() -> None:
    """A workflow (or loop iteration) of inline control nodes only is already finished
    when it is created: it is archived and enters the retention like any other."""
    store = MemoryStateStore(max_finished=3)
    async with Engine(registry=TaskRegistry(), state=store, pools=[]) as engine:
        await engine.register(
            {"id": "instant", "nodes": [{"id": "t", "type": "transform", "output": "${ input }"}]}
        )
        for i in range(20):
            result = await engine.run("instant", i, timeout=5)
            assert result.succeeded
        kept = len(await store.list_executions(limit=1000))
    assert kept <= 3, f"{kept} finished executions kept, retention is 3"
