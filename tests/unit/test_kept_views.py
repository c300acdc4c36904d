"""The orchestrator decides an execution's next events on the view it committed last
(no load), and falls back to a load wherever only a load can tell what to do."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytest

from spane.bus.base import Delivery
from spane.core.options import CoreOptions
from spane.orchestrator import apply
from spane.orchestrator.apply import Transitions
from spane.orchestrator.plan_cache import PlanCache
from spane.schemas.commands import DispatchTask
from spane.schemas.messages import ExecutionMessage, StartExecution, TaskResult
from spane.schemas.state import ExecutionStatus
from spane.schemas.view import ExecutionView
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import Applied
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore


class Counting(MemoryStateStore):
    """Records the executions each load that reads something asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[list[str]] = []

    async def load_many(
        self,
        requests: Mapping[str, Sequence[str]],
        loops: Mapping[str, Mapping[str, int]] | None = None,
        nodes: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, tuple[ExecutionView | None, dict[str, Applied]]]:
        if requests:  # asking for nothing reads nothing (no round trip on Redis either)
            self.loads.append(list(requests))
        return await super().load_many(requests, loops, nodes)


CHAIN: list[dict[str, Any]] = [
    {"id": "a", "function": "f"},
    {"id": "b", "function": "f", "after": ["a"]},
    {"id": "c", "function": "f", "after": ["b"]},
]


async def _started(
    store: MemoryStateStore, nodes: list[dict[str, Any]], execution_ids: Sequence[str]
) -> Transitions:
    """Transitions on ``store`` that started executions of workflow ``wf`` of ``nodes``."""
    definitions = MemoryDefinitionStore()
    await definitions.register(WorkflowSpec.model_validate({"id": "wf", "nodes": nodes}), "x", 0)
    core = Transitions(store, PlanCache(definitions), CoreOptions(), lambda: 1.0, 1 << 20)
    for execution_id in execution_ids:
        await core.start(StartExecution(execution_id=execution_id, workflow_id="wf"))
    return core


async def _started_chain() -> tuple[Transitions, Counting]:
    store = Counting()
    core = await _started(store, CHAIN, ["e"])
    store.loads.clear()
    return core, store


def _result(node_id: str) -> dict[str, list[Delivery[ExecutionMessage]]]:
    message = TaskResult(
        task_id=f"e:{node_id}:1", execution_id="e", node_id=node_id, attempt=1, ok=True
    )
    return {"e": [Delivery(message, f"m-{node_id}")]}


def _dispatched(commands: Sequence[object]) -> list[str]:
    return [c.task.node_id for c in commands if isinstance(c, DispatchTask)]


async def test_a_chain_steps_on_the_views_it_committed_without_loading() -> None:
    core, store = await _started_chain()
    dispatched = []
    for node_id in ("a", "b", "c"):
        [(commands, reply)] = (await core.apply_groups(_result(node_id)))["e"]
        assert reply["ok"], reply
        dispatched += _dispatched(commands)
    assert store.loads == []
    assert dispatched == ["b", "c"]
    meta = await store.get_meta("e")
    assert meta is not None
    assert meta.status is ExecutionStatus.SUCCEEDED
    assert "e" not in core._views  # a finished execution's view is not kept


async def test_a_redelivered_result_is_answered_from_its_record_after_a_load() -> None:
    core, store = await _started_chain()
    [(first, _)] = (await core.apply_groups(_result("a")))["e"]
    revision = store._executions["e"].revision
    [(again, reply)] = (await core.apply_groups(_result("a")))["e"]
    assert reply["ok"]
    assert again == first  # the next task is published again
    assert _dispatched(again) == ["b"]
    assert store.loads == [["e"]]  # the kept view could not tell: loaded
    assert store._executions["e"].revision == revision  # nothing applied twice


async def test_a_view_another_writer_overtook_is_loaded_again_and_not_kept_after() -> None:
    core, store = await _started_chain()
    await core.apply_groups(_result("a"))
    (other, _) = (await store.load_many({"e": []}))["e"]
    assert other is not None
    assert await store.commit_each([(other, {"other-replica": []})]) == [True]
    store.loads.clear()
    [(commands, reply)] = (await core.apply_groups(_result("b")))["e"]
    assert reply["ok"]
    assert _dispatched(commands) == ["c"]
    assert store.loads == [["e"]]  # the kept view's commit lost: loaded and decided again
    assert "e" in core._shared
    assert "e" not in core._views
    await core.apply_groups(_result("c"))
    assert store.loads == [["e"], ["e"]]  # shared executions are loaded from then on
    meta = await store.get_meta("e")
    assert meta is not None
    assert meta.status is ExecutionStatus.SUCCEEDED


class Sized(MemoryStateStore):
    """Views that say they hold 100 bytes of their own, as a Redis store's do."""

    async def create(self, view: ExecutionView, event_id: str, commands: Sequence[Any]) -> bool:
        created = await super().create(view, event_id, commands)
        view.held_bytes = 100
        return created


async def test_kept_views_stay_within_their_byte_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply, "KEPT_VIEWS_BYTES", 250)
    core = await _started(Sized(), CHAIN[:1], ["e0", "e1", "e2"])
    assert list(core._views) == ["e1", "e2"]  # the oldest went first
    assert core._kept_bytes == 200
    core._drop_view("e1")
    assert core._kept_bytes == 100


async def test_a_view_holding_too_much_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply, "KEPT_VIEW_BYTES", 99)
    core = await _started(Sized(), CHAIN[:1], ["e0", "e1"])
    assert not core._views
    assert core._kept_bytes == 0
