"""The embedded stores keep bounded history: finished executions and archive records."""

from __future__ import annotations

from spane.schemas.state import ExecutionMeta, ExecutionStatus
from spane.schemas.view import ExecutionView
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore


def _meta(execution_id: str, status: ExecutionStatus = ExecutionStatus.RUNNING) -> ExecutionMeta:
    return ExecutionMeta(id=execution_id, workflow_id="w", version=1, created_at=0.0, status=status)


async def test_only_the_most_recent_finished_executions_are_kept() -> None:
    store = MemoryStateStore(max_finished=2)
    for name in ("e1", "e2", "e3", "live"):
        view = ExecutionView(_meta(name), {})
        assert await store.create(view, "start", [])
        if name != "live":
            view.update_meta(status=ExecutionStatus.SUCCEEDED)
            await store.commit(view, "finish", [])
    assert await store.get_meta("e1") is None
    assert [await store.get_meta(n) is not None for n in ("e2", "e3", "live")] == [True] * 3


async def test_archive_is_bounded() -> None:
    store = MemoryDefinitionStore(max_archived=2)
    for name in ("a", "b", "c"):
        await store.archive({"id": name})
    assert await store.get_archived("a") is None
    assert await store.get_archived("c") == {"id": "c"}
