"""Retry and replay of executions (``Engine.retry`` / ``Engine.replay``), on every
backend: task bodies are counted, so "not run again" is measured, not assumed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from spane import CommandRejectedError, ExecutionStatus, NodeStatus, TaskError, TaskRegistry
from spane.errors import ExecutionNotFoundError, InvalidInputError

from .helpers import WAIT, EventLog, deploy, eventually, fn, unique_id


def _registry(runs: Counter[str], broken: dict[str, bool]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("step")
    async def step(data: Any, ctx: Any) -> Any:
        runs[ctx.node_id] += 1
        if broken.get(ctx.node_id):
            raise TaskError(f"{ctx.node_id} is broken", non_retryable=True)
        total = data.get("total", 0) if isinstance(data, dict) else 0
        return {"total": total + 1, "by": ctx.node_id}

    return reg


async def test_a_failed_execution_retried_once_fixed_succeeds_without_rerunning_successes(
    make_engine: Any,
) -> None:
    runs: Counter[str] = Counter()
    broken = {"b": True}
    engine = await make_engine(_registry(runs, broken))
    flow = await deploy(
        engine, "retry", fn("a", "step"), fn("b", "step", "a"), fn("c", "step", "b")
    )
    log = await EventLog.attach(engine, f"execution.{flow.id}.*")
    first = await flow.run({"total": 0})
    assert first.status == ExecutionStatus.FAILED
    assert runs == Counter({"a": 1, "b": 1})

    broken["b"] = False  # the cause is fixed
    await engine.retry(first.execution_id)
    result = await engine.wait(first.execution_id, WAIT)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"total": 3, "by": "c"}
    assert runs == Counter({"a": 1, "b": 2, "c": 1})  # a ran once in all
    snapshot = await engine.status(first.execution_id)
    assert snapshot.meta.retries == 1
    assert snapshot.nodes["b"].attempt == 2
    retried = await log.wait_for(first.execution_id, f"execution.{flow.id}.retried")
    assert retried[0].data["nodes"] == ["b", "c"]
    await log.wait_for(first.execution_id, f"execution.{flow.id}.succeeded")


async def test_retry_is_refused_for_a_succeeded_or_running_execution(make_engine: Any) -> None:
    runs: Counter[str] = Counter()
    engine = await make_engine(_registry(runs, {}))
    flow = await deploy(engine, "no-retry", fn("a", "step"))
    done = await flow.run()
    assert done.status == ExecutionStatus.SUCCEEDED
    with pytest.raises(CommandRejectedError, match="succeeded: nothing to retry"):
        await engine.retry(done.execution_id)
    with pytest.raises(ExecutionNotFoundError):
        await engine.retry(unique_id("missing"))
    assert runs == Counter({"a": 1})


async def test_a_retried_execution_is_archived_again_when_it_finishes(make_engine: Any) -> None:
    runs: Counter[str] = Counter()
    broken = {"b": True}
    engine = await make_engine(_registry(runs, broken))
    flow = await deploy(engine, "retry-archived", fn("a", "step"), fn("b", "step", "a"))
    first = await flow.run()
    assert first.status == ExecutionStatus.FAILED

    async def archived_as(status: str) -> bool:
        record = await engine.definitions.get_archived(first.execution_id)
        return record is not None and record["status"] == status

    await eventually(lambda: archived_as("failed"), what="the failed execution archived")
    broken["b"] = False
    await engine.retry(first.execution_id)
    result = await engine.wait(first.execution_id, WAIT)
    assert result.status == ExecutionStatus.SUCCEEDED
    await eventually(lambda: archived_as("succeeded"), what="the retried execution archived")
    assert runs == Counter({"a": 1, "b": 2})


async def test_replay_from_a_middle_node_runs_it_and_what_follows(make_engine: Any) -> None:
    runs: Counter[str] = Counter()
    engine = await make_engine(_registry(runs, {}))
    flow = await deploy(
        engine,
        "replay",
        fn("a", "step"),
        fn("b", "step", "a"),
        fn("c", "step", "b"),
        fn("side", "step", "a"),
    )
    first = await flow.run({"total": 10})
    assert first.status == ExecutionStatus.SUCCEEDED

    new_id = await engine.replay(first.execution_id, "b")
    result = await engine.wait(new_id, WAIT)

    assert new_id != first.execution_id
    assert result.status == ExecutionStatus.SUCCEEDED
    assert runs == Counter({"a": 1, "side": 1, "b": 2, "c": 2})
    snapshot = await engine.status(new_id)
    assert snapshot.meta.replay_of == first.execution_id
    assert snapshot.meta.input == {"total": 10}
    assert snapshot.nodes["a"].output == {"total": 11, "by": "a"}
    assert snapshot.nodes["b"].status == NodeStatus.SUCCEEDED


async def test_replay_with_a_new_input_and_from_an_unknown_node(make_engine: Any) -> None:
    runs: Counter[str] = Counter()
    engine = await make_engine(_registry(runs, {}))
    flow = await deploy(engine, "replay-input", fn("a", "step"), fn("b", "step", "a"))
    first = await flow.run({"total": 1})
    with pytest.raises(InvalidInputError, match=r"'nope' is not a node .*\(nodes: a, b\)"):
        await engine.replay(first.execution_id, "nope")
    new_id = await engine.replay(first.execution_id, "a", {"total": 100})
    result = await engine.wait(new_id, WAIT)
    assert result.output == {"total": 102, "by": "b"}
    assert runs == Counter({"a": 2, "b": 2})
