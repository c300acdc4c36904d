"""A batch's executions share one load and one commit round trip; an execution whose
commit lost to another writer is applied again on its own, with the same outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from spane import Engine, ExecutionStatus, TaskRegistry
from spane.config import Settings
from spane.schemas.commands import Command
from spane.schemas.view import ExecutionView
from spane.state.memory import MemoryStateStore


class Contended(MemoryStateStore):
    """Another replica wins the first few batched commits: it commits the same
    execution just before ours, so ours conflicts (and writes nothing)."""

    def __init__(self, conflicts: int) -> None:
        super().__init__()
        self.conflicts = conflicts
        self.batched: list[int] = []

    async def commit_each(
        self, commits: Sequence[tuple[ExecutionView, Mapping[str, Sequence[Command]]]]
    ) -> list[bool]:
        self.batched.append(len(commits))
        if self.conflicts and commits:
            self.conflicts -= 1
            view = commits[0][0]
            other, _ = (await self.load_many({view.meta.id: ()}))[view.meta.id]
            assert other is not None
            assert await super().commit_each([(other, {f"other-replica-{self.conflicts}": []})])
        return await super().commit_each(commits)


async def test_conflicted_executions_are_applied_again_and_finish() -> None:
    registry = TaskRegistry()

    @registry.task("add")
    async def add(data: dict[str, Any]) -> dict[str, Any]:
        return {"n": data.get("n", 0) + 1}

    store = Contended(conflicts=3)
    nodes = [
        {"id": "a", "type": "function", "function": "add"},
        {"id": "b", "type": "function", "function": "add", "after": ["a"]},
        {"id": "c", "type": "function", "function": "add", "after": ["b"]},
    ]
    settings = Settings()
    async with Engine(settings=settings, registry=registry, state=store, pools=["function"]) as e:
        await e.register({"id": "chain", "nodes": nodes})
        results = await asyncio.gather(*(e.run("chain", {"n": i}, timeout=10) for i in range(20)))

    assert store.conflicts == 0, store.batched  # every forced conflict happened
    assert [r.status for r in results] == [ExecutionStatus.SUCCEEDED] * 20
    assert sorted(r.output["n"] for r in results) == [i + 3 for i in range(20)]
    assert max(store.batched) > 1  # several executions shared one commit round trip
