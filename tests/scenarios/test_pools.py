"""Worker pools per task type: a node's ``pool:`` (or ``defaults.pool``) routes its
attempts to that pool's queue, and only that pool's workers run them. The embedded
engine starts a worker for every pool its registered workflows name."""

from __future__ import annotations

from typing import Any

from spane import ExecutionStatus, NodeStatus, TaskContext, TaskRegistry

from .helpers import WAIT, EventLog, deploy, fn, node


def _registry() -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("where")
    async def where(data: Any, ctx: TaskContext) -> dict[str, str]:
        return {"pool": ctx.pool, "worker": ctx.worker_id}

    @reg.task_type("resize")
    async def resize(data: Any, config: dict[str, Any], ctx: TaskContext) -> dict[str, str]:
        return {"pool": ctx.pool, "worker": ctx.worker_id}

    return reg


def _worker_ids(engine: Any) -> dict[tuple[str, str], str]:
    return {(w.task_type, w.pool): w.worker_id for w in engine.workers}


async def test_each_task_runs_on_a_worker_of_its_pool(make_engine) -> None:
    engine = await make_engine(_registry())
    wf = await deploy(
        engine,
        "pools",
        fn("scored", "where", pool="scoring"),
        fn("batched", "where"),  # defaults.pool
        node("resized", "resize", pool="gpu"),
        node("resized_default", "resize"),
        defaults={"pool": "batch"},
    )
    plain = await deploy(engine, "pools-plain", fn("plain", "where"))
    workers = _worker_ids(engine)
    result = await wf.run({})
    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    expected = {
        "scored": ("function", "scoring"),
        "batched": ("function", "batch"),
        "resized": ("resize", "gpu"),
        "resized_default": ("resize", "resize"),
    }
    for node_id, (task_type, pool) in expected.items():
        assert result.output[node_id] == {"pool": pool, "worker": workers[(task_type, pool)]}
    # the workers of different pools are different runtimes
    assert len({workers[key] for key in expected.values()}) == 4

    other = await plain.run({})
    assert other.output == {"pool": "function", "worker": workers[("function", "function")]}

    stats = await engine.pool_stats()
    for pool in ("scoring", "batch", "gpu", "resize", "function", "http"):
        assert stats[pool].consumers == 1, (pool, stats[pool])
        assert stats[pool].messages == 0


async def test_an_unregistered_function_on_a_pool_fails_at_once_naming_it(make_engine) -> None:
    """The engine checks functions before ``start``; a trigger starts without that check,
    as an execution started elsewhere would reach a worker missing the function."""
    engine = await make_engine(_registry())
    wf = await deploy(
        engine,
        "pools-missing",
        fn("lost", "nowhere.to.be.found", pool="scoring", retry={"max_attempts": 3}),
        triggers=[{"event": "pools.missing"}],
    )
    events = await EventLog.attach(engine, f"execution.{wf.id}.*")
    await engine.publish_trigger("pools.missing", {"x": 1})
    [(_, done)] = await events.wait_for_key(f"execution.{wf.id}.failed")
    result = await engine.wait(done.subject, WAIT)
    assert result.status == ExecutionStatus.FAILED

    state = (await engine.status(done.subject)).nodes["lost"]
    assert (state.status, state.attempt) == (NodeStatus.FAILED, 1)
    assert state.error is not None
    worker = _worker_ids(engine)[("function", "scoring")]
    assert state.error.type == "TaskNotFoundError"
    assert "'nowhere.to.be.found'" in state.error.message
    assert f"worker {worker} (pool 'scoring')" in state.error.message
    assert state.error.details == {
        "function": "nowhere.to.be.found",
        "pool": "scoring",
        "worker": worker,
    }
