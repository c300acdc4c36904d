"""Which node states the orchestrator guesses a batch will read (core.prefetch)."""

from __future__ import annotations

from typing import Any

import pytest

from spane.bus.base import Delivery
from spane.compiler.compile import compile_plan
from spane.core import prefetch
from spane.core.options import CoreOptions
from spane.core.prefetch import nodes_read
from spane.orchestrator.apply import Transitions
from spane.orchestrator.plan_cache import PlanCache
from spane.schemas.messages import (
    ChildFinished,
    ExecutionMessage,
    PauseCommand,
    StartExecution,
    TaskHeartbeat,
    TaskResult,
)
from spane.schemas.state import ExecutionStatus
from spane.schemas.workflow import WorkflowSpec
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore

NODES: list[dict[str, Any]] = [
    {"id": "a", "function": "f"},
    {"id": "b", "function": "f", "after": ["a"], "input": {"x": "${ nodes.z.output }"}},
    {"id": "c", "function": "f", "after": ["a"], "when": "nodes.y.output > 1"},
    {"id": "d", "function": "f", "after": ["b", "c"]},
    {"id": "y", "function": "f"},
    {"id": "z", "function": "f"},
]


def _plan(extra: int = 0) -> Any:
    filler = [{"id": f"n{i}", "function": "f"} for i in range(extra)]
    return compile_plan(WorkflowSpec.model_validate({"id": "wf", "nodes": NODES + filler}))


def _delivery(node_id: str, message_id: str) -> Delivery[ExecutionMessage]:
    message: ExecutionMessage = _result(node_id)
    return Delivery(message, message_id)


def _result(node_id: str) -> TaskResult:
    return TaskResult(
        task_id=f"e:{node_id}:1", execution_id="e", node_id=node_id, attempt=1, ok=True
    )


def test_a_result_reads_its_node_its_successors_and_what_their_expressions_read():
    plan = _plan(extra=prefetch.SMALL_PLAN)
    assert nodes_read(plan, [_result("a")]) == frozenset({"a", "b", "c", "y", "z"})
    assert nodes_read(plan, [_result("b")]) == frozenset({"b", "d", "z"})
    assert nodes_read(plan, [_result("b"), _result("c")]) == frozenset({"b", "c", "d", "y", "z"})
    heartbeat = TaskHeartbeat(task_id="e:d:1", execution_id="e", node_id="d", attempt=1)
    assert nodes_read(plan, [heartbeat]) == frozenset({"d"})
    child = ChildFinished(
        execution_id="e", node_id="c", child_execution_id="e.c.1", status=ExecutionStatus.SUCCEEDED
    )
    assert nodes_read(plan, [child]) == frozenset({"c", "d", "y"})


def test_small_plans_unknown_nodes_and_other_messages_load_every_node():
    assert nodes_read(_plan(), [_result("a")]) is None  # small: cheaper whole
    plan = _plan(extra=prefetch.SMALL_PLAN)
    assert nodes_read(plan, [_result("nope")]) is None
    other: list[ExecutionMessage] = [_result("a"), PauseCommand(execution_id="e")]
    assert nodes_read(plan, other) is None


@pytest.mark.parametrize("size", [prefetch.SMALL_PLAN, 10 * prefetch.SMALL_PLAN])
def test_the_guess_does_not_grow_with_the_workflow(size: int):
    chain = [{"id": "s0", "function": "f"}] + [
        {"id": f"s{i}", "function": "f", "after": [f"s{i - 1}"]} for i in range(1, size + 1)
    ]
    plan = compile_plan(WorkflowSpec.model_validate({"id": "wf", "nodes": chain}))
    assert nodes_read(plan, [_result("s5")]) == frozenset({"s5", "s6"})


async def test_the_orchestrator_guesses_for_a_running_execution_and_forgets_a_finished_one():
    prefetch_small, prefetch.SMALL_PLAN = prefetch.SMALL_PLAN, 0
    try:
        definitions = MemoryDefinitionStore()
        chain = [
            {"id": "a", "function": "f"},
            {"id": "b", "function": "f", "after": ["a"]},
            {"id": "c", "function": "f", "after": ["b"]},
        ]
        spec = WorkflowSpec.model_validate({"id": "wf", "nodes": chain})
        await definitions.register(spec, "checksum", 0.0)
        core = Transitions(
            MemoryStateStore(), PlanCache(definitions), CoreOptions(), lambda: 1.0, 1 << 20
        )
        await core.start(StartExecution(execution_id="e", workflow_id="wf"))
        result_a = _delivery("a", "m1")
        assert core._nodes_read("e", [result_a]) is None  # plan not seen here yet
        await core.apply_group("e", [result_a])
        assert core._nodes_read("e", [_delivery("b", "m2")]) == frozenset({"b", "c"})
        for node_id in ("b", "c"):
            await core.apply_group("e", [_delivery(node_id, f"m-{node_id}")])
        meta = await core.state.get_meta("e")
        assert meta is not None
        assert meta.status is ExecutionStatus.SUCCEEDED
        assert core._nodes_read("e", [_delivery("c", "m3")]) is None  # forgotten
    finally:
        prefetch.SMALL_PLAN = prefetch_small
