"""Finished executions are archived in batches; one bad record costs only itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from spane.bus.memory import MemoryBus
from spane.orchestrator.service import OrchestratorService
from spane.schemas.state import ExecutionMeta, ExecutionStatus, NodeStatus
from spane.schemas.view import ExecutionView
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore


class Picky(MemoryDefinitionStore):
    """Refuses any write that holds the record ``bad``; counts the writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[str]] = []

    async def archive_many(self, executions: Sequence[dict[str, Any]]) -> None:
        ids = [str(e["id"]) for e in executions]
        self.writes.append(ids)
        if "bad" in ids:
            raise ValueError("the archive refused record bad")
        await super().archive_many(executions)


async def finished(state: MemoryStateStore, execution_id: str) -> None:
    meta = ExecutionMeta(
        id=execution_id,
        workflow_id="wf",
        version=1,
        status=ExecutionStatus.SUCCEEDED,
        created_at=1.0,
    )
    view = ExecutionView(meta, {})
    view.update_node("a", status=NodeStatus.SUCCEEDED, output={"of": execution_id})
    assert await state.create(view, "start", [])


async def test_a_batch_is_one_write() -> None:
    state, archive = MemoryStateStore(), Picky()
    service = OrchestratorService(MemoryBus(), state, archive)
    for name in ("a", "b", "c"):
        await finished(state, name)

    await service.archiver.archive_batch(["a", "b", "c", "never-existed"])

    assert archive.writes == [["a", "b", "c"]]
    record = await archive.get_archived("b")
    assert record is not None
    assert record["nodes"]["a"]["output"] == {"of": "b"}


async def test_a_refused_batch_is_retried_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    state, archive = MemoryStateStore(), Picky()
    service = OrchestratorService(MemoryBus(), state, archive)
    for name in ("a", "bad", "c"):
        await finished(state, name)

    await service.archiver.archive_batch(["a", "bad", "c"])

    assert archive.writes == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert await archive.get_archived("a") is not None
    assert await archive.get_archived("c") is not None
    assert await archive.get_archived("bad") is None
    assert "archiving execution bad failed" in caplog.text


class Down(Picky):
    async def archive_many(self, executions: Sequence[dict[str, Any]]) -> None:
        self.writes.append([str(e["id"]) for e in executions])
        raise ConnectionError("the archive is down")


async def test_an_unavailable_archive_is_not_retried_once_per_execution(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, archive = MemoryStateStore(), Down()
    service = OrchestratorService(MemoryBus(), state, archive)
    names = [f"e{i}" for i in range(10)]
    for name in names:
        await finished(state, name)

    await service.archiver.archive_batch(names)

    assert archive.writes == [names, ["e0"], ["e1"]]  # then it stops trying
    assert "8 execution(s) not archived" in caplog.text
