"""Finished executions are archived in batches; one bad record costs only itself; the
queue of executions to archive is durable, so none is lost or deleted unarchived."""

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
    assert "8 execution(s) wait" in caplog.text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_finished_execution_is_queued_until_the_archive_holds_it() -> None:
    clock = Clock()
    state, archive = MemoryStateStore(clock=clock), Down()
    service = OrchestratorService(MemoryBus(), state, archive, clock=clock)
    await finished(state, "a")

    assert await service.archiver.archive_due() == 1  # claimed, the write failed
    assert await state.claim_unarchived(clock.now, 10, 30.0) == []  # leased meanwhile
    assert await state.get_meta("a") is not None  # and never dropped

    clock.now += 31.0  # the lease ended: due again, archived once the archive is back
    service.archiver.definitions = working = Picky()
    assert await service.archiver.archive_due() == 1
    assert working.writes == [["a"]]
    assert await state.claim_unarchived(clock.now + 1000, 10, 30.0) == []


async def test_memory_retention_never_drops_an_execution_not_archived_yet() -> None:
    state = MemoryStateStore(max_finished=1)
    for name in ("a", "b", "c"):
        await finished(state, name)
    assert all([await state.get_meta(name) for name in ("a", "b", "c")])  # none archived
    await state.mark_archived(["a", "b", "c"])
    assert [await state.get_meta(name) is not None for name in ("a", "b", "c")] == [
        False,
        False,
        True,
    ]
