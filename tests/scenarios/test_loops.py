"""Loops: for_each, while, repeat, and break/continue in their bodies (DESIGN §2 node
types)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spane import ExecutionStatus, NodeStatus, TaskRegistry
from spane.schemas.state import LoopState

from .helpers import WAIT, Probe, deploy, eventually, fn, node


def body(*nodes: dict[str, object], output: object = None) -> dict[str, object]:
    spec: dict[str, object] = {"nodes": list(nodes)}
    if output is not None:
        spec["output"] = output
    return spec


async def test_for_each_runs_the_body_per_item_and_keeps_item_order(make_engine):
    reg = TaskRegistry()
    seen: list[tuple[Any, Any]] = []

    @reg.task("label")
    async def label(data):
        # later items finish first
        await asyncio.sleep(0.01 * (4 - data["index"]))
        seen.append((data["item"], data["index"]))
        return f"{data['index']}:{data['item']}"

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "for-each",
        node(
            "each",
            "for_each",
            items="${ input.names }",
            body=body(fn("work", "label", input={"item": "${ item }", "index": "${ index }"})),
        ),
        fn("after", "label", "each", input={"item": "${ data }", "index": 4}),
    )

    result = await wf.run({"names": ["a", "b", "c", "d"]})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["each"].output == ["0:a", "1:b", "2:c", "3:d"]
    assert sorted(seen[:4]) == [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
    assert result.output == "4:['0:a', '1:b', '2:c', '3:d']"


async def test_for_each_body_sees_item_and_index_in_expressions_and_output(make_engine):
    reg = TaskRegistry()

    @reg.task("square")
    async def square(data):
        return data * data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "for-each-output",
        node(
            "each",
            "for_each",
            items="${ input }",
            body=body(
                fn("sq", "square", input="${ item }"),
                output={"i": "${ index }", "sq": "${ nodes.sq.output }"},
            ),
        ),
    )

    result = await wf.run([2, 3, 4])

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == [{"i": 0, "sq": 4}, {"i": 1, "sq": 9}, {"i": 2, "sq": 16}]


async def test_for_each_respects_its_concurrency_bound(make_engine):
    reg = TaskRegistry()
    probe = Probe()

    @reg.task("work")
    async def work(data):
        async with probe.running():
            await asyncio.sleep(0.02)
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "for-each-bound",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=3,
            body=body(fn("w", "work")),
        ),
    )

    result = await wf.run(list(range(10)))

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == list(range(10))
    assert probe.calls == 10
    assert probe.peak == 3


async def test_for_each_over_an_empty_list_outputs_an_empty_list(make_engine):
    reg = TaskRegistry()
    calls: list[Any] = []

    @reg.task("work")
    async def work(data):
        calls.append(data)
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "for-each-empty",
        node("each", "for_each", items="${ input }", body=body(fn("w", "work"))),
        fn("after", "work", "each"),
    )

    result = await wf.run([])

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == []
    assert calls == [[]]


async def test_failed_iteration_fails_the_loop_node(make_engine):
    reg = TaskRegistry()

    @reg.task("picky")
    async def picky(data):
        if data == "bad":
            raise ValueError(f"cannot handle {data}")
        return data

    @reg.task("echo")
    async def echo(data):
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "for-each-fails",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=1,
            body=body(fn("w", "picky")),
        ),
        fn("recover", "echo", "each.error"),
    )

    result = await wf.run(["ok", "bad", "never"])

    assert result.status == ExecutionStatus.SUCCEEDED
    error = result.output
    assert error["node_id"] == "each"
    assert error["type"] == "ValueError"
    assert "iteration 1" in error["message"]
    assert "cannot handle bad" in error["message"]
    assert (await engine.status(result.execution_id)).nodes["each"].status == NodeStatus.FAILED


async def test_for_each_items_that_are_not_a_list_fail_the_node(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = await deploy(
        engine,
        "for-each-not-list",
        node("each", "for_each", items="${ input }", body=body(node("n", "noop"))),
    )

    result = await wf.run({"not": "a list"})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "each"
    assert "list" in result.error.message


async def test_for_each_with_a_registered_body_workflow(make_engine):
    reg = TaskRegistry()

    @reg.task("upper")
    async def upper(data):
        return data.upper()

    engine = await make_engine(reg)
    body_wf = await deploy(engine, "body", fn("u", "upper"))
    wf = await deploy(
        engine,
        "for-each-workflow",
        node("each", "for_each", items="${ input }", workflow=body_wf.id),
    )

    result = await wf.run(["x", "y"])

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == ["X", "Y"]


async def test_nested_for_each(make_engine):
    reg = TaskRegistry()

    @reg.task("times_ten")
    async def times_ten(data):
        return data * 10

    engine = await make_engine(reg)
    inner = node(
        "inner", "for_each", items="${ item }", body=body(fn("t", "times_ten", input="${ item }"))
    )
    wf = await deploy(
        engine, "nested", node("outer", "for_each", items="${ input }", body=body(inner))
    )

    result = await wf.run([[1, 2], [], [3]])

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == [[10, 20], [], [30]]


async def test_while_loop_runs_while_its_condition_on_index_holds(make_engine):
    reg = TaskRegistry()
    calls: list[Any] = []

    @reg.task("tick")
    async def tick(data):
        calls.append(data)
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "while-index",
        node(
            "loop",
            "while",
            condition="index < input.times",
            body=body(fn("t", "tick", input="${ index }")),
        ),
    )

    result = await wf.run({"times": 3})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == [0, 1, 2]
    assert calls == [0, 1, 2]


async def test_while_loop_condition_and_body_see_the_previous_iteration_output(make_engine):
    reg = TaskRegistry()

    @reg.task("double")
    async def double(data):
        return {"v": data * 2}

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "while-output",
        node(
            "loop",
            "while",
            condition="iteration.output == null || iteration.output.v < 20",
            body=body(
                fn(
                    "d",
                    "double",
                    input="${ iteration.output == null ? 1 : iteration.output.v }",
                ),
            ),
        ),
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == [{"v": 2}, {"v": 4}, {"v": 8}, {"v": 16}, {"v": 32}]


async def test_while_loop_whose_condition_is_false_at_once_outputs_nothing(make_engine):
    reg = TaskRegistry()
    calls: list[Any] = []

    @reg.task("tick")
    async def tick(data):
        calls.append(data)

    engine = await make_engine(reg)
    wf = await deploy(
        engine, "while-never", node("loop", "while", condition="false", body=body(fn("t", "tick")))
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == []
    assert calls == []


async def test_while_loop_exceeding_max_iterations_fails_clearly(make_engine):
    reg = TaskRegistry()
    calls: list[Any] = []

    @reg.task("tick")
    async def tick(data):
        calls.append(data)

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "while-max",
        node(
            "loop",
            "while",
            condition="true",
            max_iterations=3,
            body=body(fn("t", "tick")),
        ),
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "loop"
    assert "max_iterations" in result.error.message
    assert "3" in result.error.message
    assert len(calls) == 3


async def test_repeat_runs_the_body_the_given_number_of_times(make_engine):
    reg = TaskRegistry()

    @reg.task("square")
    async def square(data):
        return data * data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "repeat",
        node("fixed", "repeat", times=3, body=body(fn("s", "square", input="${ index }"))),
        node(
            "computed",
            "repeat",
            times="${ input.k }",
            body=body(fn("s", "square", input="${ index + 10 }")),
        ),
        node("none", "repeat", times=0, body=body(fn("s", "square", input="${ index }"))),
    )

    result = await wf.run({"k": 2})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"fixed": [0, 1, 4], "computed": [100, 121], "none": []}


async def test_repeat_with_a_bad_times_value_fails_the_node(make_engine):
    engine = await make_engine(TaskRegistry())
    wf = await deploy(
        engine, "repeat-bad", node("r", "repeat", times="${ input }", body=body(node("n", "noop")))
    )

    result = await wf.run("three")

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "r"
    assert "times" in result.error.message


async def test_break_ends_the_loop(make_engine):
    reg = TaskRegistry()
    processed: list[Any] = []

    @reg.task("process")
    async def process(data):
        processed.append(data)
        return data * 10

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "break",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=1,
            body=body(
                fn("p", "process", input="${ item }"),
                node("stop", "break", "p", when="item == 3"),
                output="${ nodes.p.output }",
            ),
        ),
        node("after", "noop", "each"),
    )

    result = await wf.run([1, 2, 3, 4, 5])

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert processed == [1, 2, 3]
    each = (await engine.status(result.execution_id)).nodes["each"]
    assert each.status == NodeStatus.SUCCEEDED
    assert each.output[:2] == [10, 20]
    assert len(each.output) == 3


async def test_break_ends_a_while_loop(make_engine):
    reg = TaskRegistry()
    calls: list[Any] = []

    @reg.task("tick")
    async def tick(data):
        calls.append(data)
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "while-break",
        node(
            "loop",
            "while",
            condition="true",
            max_iterations=100,
            body=body(
                fn("t", "tick", input="${ index }"),
                node("enough", "break", "t", when="data >= 2"),
            ),
        ),
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert calls == [0, 1, 2]


async def test_continue_ends_only_the_current_iteration(make_engine):
    reg = TaskRegistry()
    worked: list[Any] = []

    @reg.task("work")
    async def work(data):
        worked.append(data)
        return data * 100

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "continue",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=1,
            body=body(
                node("skip_even", "continue", when="item % 2 == 0"),
                fn("w", "work", "skip_even.always", input="${ item }"),
                output="${ nodes.w.output }",
            ),
        ),
    )

    result = await wf.run([1, 2, 3, 4])

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert worked == [1, 3]
    assert len(result.output) == 4
    assert result.output[0] == 100
    assert result.output[2] == 300


async def test_break_with_concurrent_iterations_cancels_the_running_ones(make_engine):
    reg = TaskRegistry()
    cancelled: list[Any] = []
    started: list[Any] = []

    @reg.task("slow")
    async def slow(data, ctx):
        if data == 0:
            return "stop"
        started.append(data)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                cancelled.append(data)
            raise
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "break-concurrent",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=3,
            body=body(
                fn("s", "slow", input="${ item }"),
                node("stop", "break", "s", when="data == 'stop'"),
                output="${ nodes.s.output }",
            ),
        ),
    )

    result = await wf.run(list(range(6)))

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == ["stop"]
    # Iterations 1 and 2 were running or about to: each either saw its cancellation or
    # was dropped before it started (cancellation is durable); none ran to the end.
    assert set(started) <= {1, 2}
    await eventually(lambda: sorted(cancelled) == sorted(started), what="cancellations seen")


async def test_failed_iteration_cancels_the_other_running_iterations(make_engine):
    reg = TaskRegistry()
    cancelled: list[Any] = []
    started: list[Any] = []

    @reg.task("work")
    async def work(data, ctx):
        if data == "bad":
            await asyncio.sleep(0.02)
            raise RuntimeError("bad item")
        started.append(data)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                cancelled.append(data)
            raise
        return data

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "iteration-fails",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=3,
            body=body(fn("w", "work")),
        ),
    )

    result = await wf.run(["a", "bad", "c", "d"])

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "each"
    # "a" and "c" were running or about to: each saw its cancellation or never started.
    assert set(started) <= {"a", "c"}
    await eventually(lambda: sorted(cancelled) == sorted(started), what="cancellations seen")


async def test_cancelling_an_execution_cancels_its_loop_iterations(make_engine):
    reg = TaskRegistry()
    started: list[Any] = []
    cancelled: list[Any] = []

    @reg.task("hangs")
    async def hangs(data, ctx):
        started.append(data)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if ctx.cancelled.is_set():
                cancelled.append(data)
            raise

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "cancel-loop",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=2,
            body=body(fn("h", "hangs")),
        ),
    )

    execution_id = await wf.start([1, 2, 3])
    await eventually(lambda: len(started) == 2, what="two iterations running")
    await engine.cancel(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.CANCELLED
    await eventually(lambda: sorted(cancelled) == [1, 2], what="iterations cancelled")
    # the loop's final record: the third iteration was never started
    loop = (await engine.status(execution_id)).nodes["each"].loop
    assert loop is not None
    assert loop.next == 2
    assert started == [1, 2]


async def test_paused_loop_starts_no_iteration_and_continues_on_resume(make_engine):
    reg = TaskRegistry()
    started: list[Any] = []
    gate = asyncio.Event()

    @reg.task("gated")
    async def gated(data):
        started.append(data)
        async with asyncio.timeout(5):
            await gate.wait()
        return data * 10

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "pause-loop",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=1,
            body=body(fn("g", "gated")),
        ),
    )

    execution_id = await wf.start([1, 2, 3])
    await eventually(lambda: started == [1], what="first iteration running")
    await engine.pause(execution_id)
    gate.set()

    async def first_iteration_done() -> LoopState | None:
        loop = (await engine.status(execution_id)).nodes["each"].loop
        return loop if loop is not None and loop.done else None

    # the step recording the first iteration's end is the one that would start the next
    loop = await eventually(first_iteration_done, what="the first iteration's end recorded")
    assert (loop.done, loop.running, loop.next) == (1, (), 1)
    assert started == [1], "an iteration started while the execution was paused"

    await engine.resume(execution_id)
    result = await engine.wait(execution_id, 10)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == [10, 20, 30]
    assert started == [1, 2, 3]


async def test_loop_in_a_finally_branch_runs_and_the_execution_ends(make_engine):
    """DESIGN §2: finally branches (successors of .always edges) run to completion."""
    engine = await make_engine(TaskRegistry())
    wf = await deploy(
        engine,
        "finally-loop",
        node("boom", "fail", error="boom"),
        node(
            "cleanup",
            "for_each",
            "boom.always",
            items="${ [1, 2] }",
            body=body(node("t", "transform", output="${ item * 10 }")),
        ),
    )
    execution_id = await wf.start()
    try:
        result = await engine.wait(execution_id, WAIT)
    except TimeoutError:
        snapshot = await engine.status(execution_id)
        pytest.fail(
            "execution never ended: finally loop is "
            f"{snapshot.nodes['cleanup'].status} with {snapshot.nodes['cleanup'].loop}"
        )
    assert result.status == ExecutionStatus.FAILED
    assert (await engine.status(execution_id)).nodes["cleanup"].output == [10, 20]
