"""Graphs of task nodes: chains, fan-out/fan-in, diamonds, parallelism and its limits
(DESIGN §2 "Edges and ports", "Outcome of an execution", max_concurrency)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry
from spane.schemas.messages import ActivateExecution

from .helpers import (
    WAIT,
    Probe,
    deploy,
    eventually,
    fn,
    node,
    status_of,
    statuses,
    wait_node,
    wait_status,
    within,
)


async def test_linear_chain_runs_in_order_and_passes_outputs(make_engine):
    reg = TaskRegistry()
    calls: list[str] = []

    @reg.task("append")
    async def append(data, ctx):
        calls.append(ctx.node_id)
        return {"path": [*data["path"], ctx.node_id]}

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "chain",
        fn("a", "append"),
        fn("b", "append", "a"),
        fn("c", "append", "b"),
        fn("d", "append", "c"),
    )

    result = await wf.run({"path": []})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.error is None
    assert result.output == {"path": ["a", "b", "c", "d"]}
    assert calls == ["a", "b", "c", "d"]
    snapshot = await engine.status(result.execution_id)
    assert snapshot.meta.status == ExecutionStatus.SUCCEEDED
    assert snapshot.meta.workflow_id == wf.id
    assert snapshot.meta.input == {"path": []}
    assert snapshot.meta.output == result.output
    for node_id in "abcd":
        state = snapshot.nodes[node_id]
        assert state.status == NodeStatus.SUCCEEDED
        assert state.attempt == 1
        assert state.error is None
    assert snapshot.nodes["b"].input == {"path": ["a"]}
    assert snapshot.nodes["d"].output == {"path": ["a", "b", "c", "d"]}


async def test_fan_out_branches_run_at_the_same_time(make_engine):
    reg = TaskRegistry()
    barrier = asyncio.Barrier(3)
    probe = Probe()

    @reg.task("split")
    async def split(data):
        return {"value": data["value"]}

    @reg.task("branch")
    async def branch(data, ctx):
        async with probe.running():
            # Only passes when all three branches are inside at once.
            async with asyncio.timeout(5):
                await barrier.wait()
            await asyncio.sleep(0.02)
        return {ctx.node_id: data["value"]}

    @reg.task("gather")
    async def gather(data):
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "fan",
        fn("split", "split"),
        fn("b1", "branch", "split"),
        fn("b2", "branch", "split"),
        fn("b3", "branch", "split"),
        fn("join", "gather", "b1", "b2", "b3"),
    )

    result = await wf.run({"value": 7})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"b1": {"b1": 7}, "b2": {"b2": 7}, "b3": {"b3": 7}}
    assert probe.peak == 3
    latest_start = max(start for start, _ in probe.spans)
    earliest_end = min(end for _, end in probe.spans)
    assert latest_start < earliest_end, "branches did not overlap in time"


async def test_diamond_runs_the_join_once_with_both_outputs(make_engine):
    reg = TaskRegistry()
    joined: list[Any] = []

    @reg.task("double")
    async def double(data):
        await asyncio.sleep(0.01)
        return data * 2

    @reg.task("triple")
    async def triple(data):
        return data * 3

    @reg.task("join")
    async def join(data):
        joined.append(data)
        return data["left"] + data["right"]

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "diamond",
        node("start", "noop"),
        fn("left", "double", "start"),
        fn("right", "triple", "start"),
        fn("sum", "join", "left", "right"),
    )

    result = await wf.run(5)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == 25
    assert joined == [{"left": 10, "right": 15}]


async def test_bench_w3_diamond_respects_every_dependency(make_engine):
    """The 10-node DAG of bench W3: a -> b,c,d; b,c -> e; d -> f; e,f -> g; g -> h,i; h,i -> j."""
    reg = TaskRegistry()
    finished: dict[str, float] = {}
    started: dict[str, float] = {}
    counts: dict[str, int] = {}

    @reg.task("step")
    async def step(data, ctx):
        started[ctx.node_id] = time.monotonic()
        counts[ctx.node_id] = counts.get(ctx.node_id, 0) + 1
        await asyncio.sleep(0.005)
        finished[ctx.node_id] = time.monotonic()
        return ctx.node_id

    parents = {
        "a": [],
        "b": ["a"],
        "c": ["a"],
        "d": ["a"],
        "e": ["b", "c"],
        "f": ["d"],
        "g": ["e", "f"],
        "h": ["g"],
        "i": ["g"],
        "j": ["h", "i"],
    }
    engine = await make_engine(reg)
    wf = await deploy(engine, "w3", *[fn(n, "step", *after) for n, after in parents.items()])

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "j"
    assert counts == dict.fromkeys(parents, 1)
    for child, after in parents.items():
        for parent in after:
            assert finished[parent] <= started[child], f"{child} started before {parent} ended"


async def test_several_roots_all_receive_the_input_and_leaves_form_the_output(make_engine):
    reg = TaskRegistry()

    @reg.task("tag")
    async def tag(data, ctx):
        return {"node": ctx.node_id, "got": data}

    engine = await make_engine(reg)
    wf = await deploy(engine, "roots", fn("x", "tag"), fn("y", "tag"))

    result = await wf.run({"k": 1})

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {
        "x": {"node": "x", "got": {"k": 1}},
        "y": {"node": "y", "got": {"k": 1}},
    }


async def test_many_executions_run_side_by_side_without_mixing_data(make_engine):
    reg = TaskRegistry()

    @reg.task("square")
    async def square(data):
        await asyncio.sleep(0.01)
        return data * data

    @reg.task("plus_one")
    async def plus_one(data):
        return data + 1

    engine = await make_engine(reg)
    wf = await deploy(engine, "many", fn("sq", "square"), fn("inc", "plus_one", "sq"))

    results = await within(asyncio.gather(*(wf.run(n) for n in range(20))))

    assert [r.status for r in results] == [ExecutionStatus.SUCCEEDED] * 20
    assert [r.output for r in results] == [n * n + 1 for n in range(20)]
    assert len({r.execution_id for r in results}) == 20


async def test_max_concurrency_bounds_the_tasks_running_at_once(make_engine):
    reg = TaskRegistry()
    probe = Probe()

    @reg.task("work")
    async def work(data):
        async with probe.running():
            await asyncio.sleep(0.03)
        return data

    engine = await make_engine(reg)
    wf = await deploy(engine, "limit", *[fn(f"t{i}", "work") for i in range(6)], max_concurrency=2)

    result = await wf.run(1)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert probe.calls == 6
    assert probe.peak == 2
    snapshot = await engine.status(result.execution_id)
    assert set(statuses(snapshot, *(f"t{i}" for i in range(6))).values()) == {NodeStatus.SUCCEEDED}


async def test_max_concurrency_is_per_execution(make_engine):
    reg = TaskRegistry()
    probe = Probe()
    gate = asyncio.Event()

    @reg.task("hold")
    async def hold(data):
        async with probe.running():
            async with asyncio.timeout(5):
                await gate.wait()
        return data

    engine = await make_engine(reg)
    wf = await deploy(engine, "per-exec", fn("a", "hold"), max_concurrency=1)

    first = await wf.start(1)
    second = await wf.start(2)
    await wait_node(engine, first, "a", NodeStatus.RUNNING)
    await wait_node(engine, second, "a", NodeStatus.RUNNING)
    # RUNNING means dispatched; the task body may start a moment later.
    await eventually(lambda: probe.current == 2, what="both tasks inside their body")
    gate.set()

    assert (await engine.wait(first, 10)).output == 1
    assert (await engine.wait(second, 10)).output == 2


async def test_max_executions_queues_extra_executions_until_a_slot_frees(make_engine):
    """DESIGN §2: ``max_executions`` = max concurrently running executions of a workflow."""
    reg = TaskRegistry()
    probe = Probe()
    gate = asyncio.Event()

    @reg.task("hold")
    async def hold(data):
        async with probe.running():
            async with asyncio.timeout(5):
                await gate.wait()
        return data

    engine = await make_engine(reg)
    wf = await deploy(engine, "max-exec", fn("a", "hold"), max_executions=1)

    first = await wf.start(1)
    second = await wf.start(2)
    try:
        await eventually(lambda: probe.current == 1, what="the first execution's task running")
        # the start of `second` decided to queue it: it is PENDING and dispatched nothing
        await wait_status(engine, second, ExecutionStatus.PENDING)
        assert status_of(await engine.status(second), "a") == NodeStatus.PENDING
        assert probe.current == 1, "a second execution ran despite max_executions: 1"
    finally:
        gate.set()

    assert (await engine.wait(first, 10)).status == ExecutionStatus.SUCCEEDED
    assert (await engine.wait(second, 10)).status == ExecutionStatus.SUCCEEDED
    assert probe.peak == 1


async def test_max_executions_slot_is_freed_by_a_cancel_and_pending_ones_can_be_cancelled(
    make_engine,
):
    reg = TaskRegistry()
    started: list[Any] = []
    gate = asyncio.Event()

    @reg.task("hold")
    async def hold(data):
        started.append(data)
        async with asyncio.timeout(5):
            await gate.wait()
        return data

    engine = await make_engine(reg)
    wf = await deploy(engine, "max-exec-cancel", fn("a", "hold"), max_executions=1)

    running = await wf.start("first")
    await wait_node(engine, running, "a", NodeStatus.RUNNING)
    dropped = await wf.start("dropped")
    waiting = await wf.start("third")
    await engine.cancel(dropped)
    assert (await engine.wait(dropped, 10)).status == ExecutionStatus.CANCELLED

    await engine.cancel(running)
    assert (await engine.wait(running, 10)).status == ExecutionStatus.CANCELLED
    # the freed slot goes to the next pending execution, not to the cancelled one
    await wait_node(engine, waiting, "a", NodeStatus.RUNNING)
    gate.set()
    assert (await engine.wait(waiting, 10)).output == "third"
    assert started == ["first", "third"]


async def test_queued_nodes_are_dispatched_by_priority(make_engine):
    reg = TaskRegistry()
    order: list[str] = []
    gate = asyncio.Event()

    @reg.task("hold")
    async def hold(data, ctx):
        async with asyncio.timeout(5):
            await gate.wait()
        order.append(ctx.node_id)

    @reg.task("note")
    async def note(data, ctx):
        order.append(ctx.node_id)

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "priority",
        fn("first", "hold"),
        fn("low", "note", priority=1),
        fn("high", "note", priority=9),
        fn("mid", "note", priority=5),
        max_concurrency=1,
    )

    execution_id = await wf.start()
    await wait_node(engine, execution_id, "first", NodeStatus.RUNNING)
    gate.set()
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert order == ["first", "high", "mid", "low"]


async def test_wide_fan_out_settles_every_branch_exactly_once(make_engine):
    reg = TaskRegistry()
    counts: dict[str, int] = {}

    @reg.task("branch")
    async def branch(data, ctx):
        counts[ctx.node_id] = counts.get(ctx.node_id, 0) + 1
        await asyncio.sleep(0.001 * (hash(ctx.node_id) % 5))
        return int(ctx.node_id[1:])

    @reg.task("total")
    async def total(data, ctx):
        counts[ctx.node_id] = counts.get(ctx.node_id, 0) + 1
        return sum(data)

    width = 100
    engine = await make_engine(reg)
    branches = [f"b{i}" for i in range(width)]
    wf = await deploy(
        engine,
        "wide",
        node("start", "noop"),
        *(fn(b, "branch", "start") for b in branches),
        fn("sum", "total", *branches, aggregate="list"),
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == sum(range(width))
    assert counts == {**dict.fromkeys(branches, 1), "sum": 1}


async def test_finished_executions_are_archived_with_their_nodes(make_engine):
    reg = TaskRegistry()

    @reg.task("double")
    async def double(data):
        return {"value": data["value"] * 2}

    engine = await make_engine(reg)
    wf = await deploy(engine, "archived", fn("a", "double"), fn("b", "double", "a"))

    results = await asyncio.gather(*(wf.run({"value": n}) for n in range(5)))

    async def all_archived() -> list[Any] | None:
        found = [await engine.definitions.get_archived(r.execution_id) for r in results]
        return None if None in found else found

    records = await eventually(all_archived, what="every execution archived")
    for n, (result, record) in enumerate(zip(results, records, strict=True)):
        assert record["id"] == result.execution_id
        assert record["status"] == "succeeded"
        assert record["output"] == {"value": n * 4}
        assert record["nodes"]["b"]["status"] == "succeeded"
        assert record["nodes"]["a"]["output"] == {"value": n * 2}


async def test_queued_execution_starts_even_if_its_activation_is_lost_once(make_engine):
    """DESIGN §5: a crash at any moment leaves no execution stuck -- here between freeing
    the ``max_executions`` slot and publishing the activation of the queued execution."""
    reg = TaskRegistry()
    gate = asyncio.Event()

    @reg.task("hold")
    async def hold(data):
        async with asyncio.timeout(5):
            await gate.wait()
        return data

    engine = await make_engine(reg)
    wf = await deploy(engine, "slot-crash", fn("a", "hold"), max_executions=1)
    first = await wf.start(1)
    await wait_node(engine, first, "a", NodeStatus.RUNNING)
    second = await wf.start(2)
    await wait_status(engine, second, ExecutionStatus.PENDING)

    bus = engine.bus
    original = bus.publish_inbox
    failed: list[bool] = []

    async def flaky_publish(messages):
        if not failed and any(isinstance(m, ActivateExecution) for m in messages):
            failed.append(True)
            raise ConnectionError("broker connection lost while publishing")
        await original(messages)

    bus.publish_inbox = flaky_publish
    gate.set()
    assert (await engine.wait(first, 5)).status == ExecutionStatus.SUCCEEDED
    await eventually(lambda: failed, timeout=5, what="the activation publish to fail once")
    try:
        result = await engine.wait(second, WAIT)
    except TimeoutError:
        meta = (await engine.status(second)).meta
        pytest.fail(f"the queued execution is stuck in {meta.status} after a redelivery")
    assert result.status == ExecutionStatus.SUCCEEDED
