"""Bad input gets a clear error and changes nothing (DESIGN §2 "Validation", §5):
invalid definitions, unknown workflows and tasks, inputs refused by ``input_schema``,
and idempotent starts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spane import (
    CommandRejectedError,
    ExecutionStatus,
    InvalidWorkflowError,
    NodeStatus,
    TaskRegistry,
)
from spane.errors import (
    ExecutionNotFoundError,
    InvalidInputError,
    TaskNotFoundError,
    WorkflowNotFoundError,
)

from .helpers import deploy, eventually, fn, node, unique_id, wait_node


def _registry(calls: list[Any]) -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("echo")
    async def echo(data):
        calls.append(data)
        return data

    return reg


async def test_invalid_workflow_reports_every_problem_and_registers_nothing(make_engine):
    engine = await make_engine(_registry([]))
    wf = unique_id("invalid")
    definition = {
        "id": wf,
        "nodes": [
            fn("charge", "echo"),
            fn("charge", "echo"),  # duplicate id
            fn("ship", "echo", "chrage"),  # unknown reference, close to 'charge'
            fn("notify", "echo", "charge", when="nodes.chrage.output.ok"),  # unknown node
            fn("quorum", "echo", "charge", "notify", join={"at_least": 3}),  # impossible
            fn("twice", "echo", "charge", "charge"),  # same upstream port twice
            fn("port", "echo", "charge.eror"),  # unknown port
        ],
    }

    with pytest.raises(InvalidWorkflowError) as caught:
        await engine.register(definition)

    error = caught.value
    assert isinstance(error, ValueError)
    by_location = {problem.location: problem for problem in error.problems}
    assert "nodes[1].id" in by_location
    assert "duplicate" in by_location["nodes[1].id"].message
    assert "nodes[2].after[0]" in by_location
    assert "chrage" in by_location["nodes[2].after[0]"].message
    assert "charge" in (by_location["nodes[2].after[0]"].hint or "")
    assert "nodes[3].when" in by_location
    assert "chrage" in by_location["nodes[3].when"].message
    assert "nodes[4].join" in by_location
    assert "nodes[5].after[1]" in by_location
    assert "nodes[6].after[0]" in by_location
    assert len(error.problems) >= 6
    text = str(error)
    for location in by_location:
        assert location in text

    with pytest.raises(WorkflowNotFoundError):
        await engine.start(wf, {})


async def test_structural_problems_are_all_reported_with_locations(make_engine):
    engine = await make_engine(_registry([]))
    wf = unique_id("structural")

    with pytest.raises(InvalidWorkflowError) as caught:
        await engine.register(
            {
                "id": wf,
                "nodes": [
                    {"id": "a", "type": "function"},  # no function
                    fn("b", "echo", retry={"max_attempts": 0}),  # out of range
                    fn("c", "echo", colour="red"),  # unknown field
                ],
            }
        )

    locations = {problem.location for problem in caught.value.problems}
    assert {"nodes[0].function", "nodes[1].retry.max_attempts", "nodes[2].colour"} <= locations
    with pytest.raises(WorkflowNotFoundError):
        await engine.start(wf, {})


async def test_cycles_and_misplaced_break_are_refused(make_engine):
    engine = await make_engine(_registry([]))
    wf = unique_id("cycle")

    with pytest.raises(InvalidWorkflowError) as caught:
        await engine.register(
            {
                "id": wf,
                "nodes": [
                    fn("a", "echo", "c"),
                    fn("b", "echo", "a"),
                    fn("c", "echo", "b"),
                    node("stop", "break"),
                ],
            }
        )

    messages = " | ".join(str(problem) for problem in caught.value.problems)
    assert "cycle" in messages
    assert "break" in messages


async def test_expression_and_reachability_problems_are_reported(make_engine):
    engine = await make_engine(_registry([]))
    wf = unique_id("expressions")

    with pytest.raises(InvalidWorkflowError) as caught:
        await engine.register(
            {
                "id": wf,
                "nodes": [
                    fn("a", "echo", when="input.total >"),  # syntax error
                    fn("b", "echo", "a", input="${ vars.counter }"),  # never defined
                    node("stop", "fail", "a"),
                    fn("dead", "echo", "stop"),  # a fail node's success port never fires
                    fn("c", "echo", "a", input="${ item }"),  # loop-only name
                ],
                "output": "${ nodes.missing.output }",
            }
        )

    by_location = {problem.location: problem for problem in caught.value.problems}
    assert "syntax" in by_location["nodes[0].when"].message
    assert "counter" in by_location["nodes[1].input"].message
    assert "never" in by_location["nodes[3].after"].message
    assert "stop.error" in (by_location["nodes[3].after"].hint or "")
    assert "item" in by_location["nodes[4].input"].message
    assert "missing" in by_location["output"].message


async def test_an_invalid_new_version_leaves_the_registered_one_in_place(make_engine):
    calls: list[Any] = []
    engine = await make_engine(_registry(calls))
    wf = unique_id("versions")
    first = await engine.register({"id": wf, "nodes": [fn("a", "echo")]})

    with pytest.raises(InvalidWorkflowError):
        await engine.register({"id": wf, "nodes": [fn("a", "echo", "missing")]})

    result = await engine.run(wf, "still v1", timeout=10)
    assert result.status == ExecutionStatus.SUCCEEDED
    assert (await engine.status(result.execution_id)).meta.version == first.version


async def test_registering_again_versions_by_content_and_executions_pin_a_version(make_engine):
    calls: list[Any] = []
    engine = await make_engine(_registry(calls))
    wf = unique_id("pinned")
    v1 = await engine.register({"id": wf, "nodes": [fn("a", "echo")]})
    same = await engine.register({"id": wf, "nodes": [fn("a", "echo")]})
    v2 = await engine.register(
        {"id": wf, "nodes": [fn("a", "echo")], "output": {"v": 2, "data": "${ nodes.a.output }"}}
    )

    assert same.version == v1.version
    assert v2.version == v1.version + 1
    latest = await engine.run(wf, "x", timeout=10)
    pinned = await engine.run(wf, "x", timeout=10, version=v1.version)
    assert latest.output == {"v": 2, "data": "x"}
    assert pinned.output == "x"
    assert (await engine.status(pinned.execution_id)).meta.version == v1.version


async def test_starting_an_unknown_workflow_is_refused(make_engine):
    engine = await make_engine(_registry([]))
    missing = unique_id("nope")

    with pytest.raises(WorkflowNotFoundError, match=missing):
        await engine.start(missing, {})
    with pytest.raises(WorkflowNotFoundError):
        await engine.run(missing, {}, timeout=10)


async def test_starting_an_unknown_version_is_refused(make_engine):
    engine = await make_engine(_registry([]))
    wf = await deploy(engine, "unknown-version", fn("a", "echo"))

    with pytest.raises(WorkflowNotFoundError):
        await wf.start({}, version=7)


async def test_input_not_matching_the_schema_is_refused_and_creates_nothing(make_engine):
    calls: list[Any] = []
    engine = await make_engine(_registry(calls))
    wf = await deploy(
        engine,
        "schema",
        fn("a", "echo"),
        input_schema={
            "type": "object",
            "properties": {"total": {"type": "number", "minimum": 0}},
            "required": ["total"],
        },
    )
    execution_id = unique_id("refused")

    with pytest.raises(InvalidInputError) as caught:
        await wf.start({"total": -5}, execution_id=execution_id)

    assert isinstance(caught.value, ValueError)
    assert "total" in str(caught.value)
    with pytest.raises(ExecutionNotFoundError):
        await engine.status(execution_id)
    with pytest.raises(InvalidInputError):
        await wf.start({"amount": 5})
    assert calls == []

    accepted = await wf.run({"total": 5})
    assert accepted.status == ExecutionStatus.SUCCEEDED
    # started after the refusals were answered: had those started anything, it ran first
    assert calls == [{"total": 5}]


async def test_input_that_is_not_json_is_refused(make_engine):
    calls: list[Any] = []
    engine = await make_engine(_registry(calls))
    wf = await deploy(engine, "non-json-input", fn("a", "echo"))

    with pytest.raises(InvalidInputError):
        await wf.start({"when": object()})
    assert calls == []


async def test_start_with_the_same_idempotency_key_runs_once(make_engine):
    calls: list[Any] = []
    engine = await make_engine(_registry(calls))
    wf = await deploy(engine, "idempotent", fn("a", "echo"))
    key = unique_id("order")

    first = await wf.start({"n": 1}, idempotency_key=key)
    second = await wf.start({"n": 2}, idempotency_key=key)
    other = await wf.start({"n": 3}, idempotency_key=unique_id("order"))

    assert second == first
    assert other != first
    assert (await engine.wait(first, 10)).output == {"n": 1}
    # `other` started after the repeated start was answered: once it ran, so would have
    # anything that repeated start set off
    assert (await engine.wait(other, 10)).output == {"n": 3}
    assert sorted(call["n"] for call in calls) == [1, 3]


async def test_start_of_a_workflow_whose_task_is_not_registered_is_refused(make_engine):
    engine = await make_engine(_registry([]))
    wf = await deploy(
        engine,
        "no-task",
        fn("a", "echo"),
        node("loop", "repeat", "a", times=2, body={"nodes": [fn("b", "ehco")]}),
    )
    execution_id = unique_id("never")

    with pytest.raises(TaskNotFoundError, match="ehco") as caught:
        await wf.start({}, execution_id=execution_id)

    assert "echo" in str(caught.value)  # did you mean
    with pytest.raises(ExecutionNotFoundError):
        await engine.status(execution_id)


async def test_start_of_a_workflow_with_an_unhandled_custom_type_is_refused(make_engine):
    engine = await make_engine(_registry([]))
    wf = await deploy(engine, "no-pool", node("x", "video-encode", config={}))

    with pytest.raises(TaskNotFoundError, match="video-encode"):
        await wf.start({})


ONE_MIB = 1024 * 1024


async def test_oversized_input_is_refused_naming_the_limit(make_engine):
    calls: list[Any] = []
    engine = await make_engine(_registry(calls))
    wf = await deploy(engine, "big-input", fn("a", "echo"))

    with pytest.raises(InvalidInputError, match="limit"):
        await wf.start({"blob": "x" * (ONE_MIB + 10)})
    assert calls == []


async def test_oversized_signal_is_refused_and_the_node_keeps_waiting(make_engine):
    engine = await make_engine(_registry([]))
    wf = await deploy(engine, "big-signal", node("w", "wait_for_signal", signal="go"))
    execution_id = await wf.start()
    await wait_node(engine, execution_id, "w", NodeStatus.WAITING)

    with pytest.raises(CommandRejectedError, match="limit"):
        await engine.signal(execution_id, "go", "x" * (ONE_MIB + 10))

    assert (await engine.status(execution_id)).nodes["w"].status == NodeStatus.WAITING
    await engine.signal(execution_id, "go", "small")
    assert (await engine.wait(execution_id, 10)).output == "small"


async def test_a_repeated_start_of_the_same_execution_id_does_not_run_its_task_again(
    make_engine,
):
    """DESIGN §5: a task runs more than once only if a worker died mid-task."""
    gate = asyncio.Event()
    runs: list[int] = []
    reg = TaskRegistry()

    @reg.task("once")
    async def once(data, ctx):
        runs.append(ctx.attempt)
        async with asyncio.timeout(5):
            await gate.wait()
        return "done"

    @reg.task("echo")
    async def echo(data):
        return data

    engine = await make_engine(reg)
    wf = await deploy(engine, "dup-start", fn("a", "once"))
    later = await deploy(engine, "after-dup-start", fn("b", "echo"))

    execution_id = unique_id("exec")
    await wf.start(execution_id=execution_id)
    try:
        await eventually(lambda: runs == [1], what="the root task running")
        # an API client retries its start (same execution id): must be a no-op
        assert await wf.start(execution_id=execution_id) == execution_id
        # started after the repeated start was answered: once its task ran, so would have
        # a second run of `a` that repeated start set off
        assert (await later.run("later")).output == "later"
    finally:
        gate.set()
    result = await engine.wait(execution_id, 5)
    assert result.status == ExecutionStatus.SUCCEEDED
    assert runs == [1], f"the root task ran {len(runs)} times for one attempt"


async def test_a_refused_start_leaves_its_idempotency_key_free(make_engine):
    """The key is bound only by a start that happens: the corrected retry starts."""
    engine = await make_engine(_registry([]))
    wf = await deploy(
        engine,
        "idem-refused",
        fn("a", "echo"),
        input_schema={
            "type": "object",
            "required": ["total"],
            "properties": {"total": {"type": "number"}},
        },
    )
    with pytest.raises(InvalidInputError):
        await wf.start({"wrong": 1}, idempotency_key="order-42")

    execution_id = await wf.start({"total": 3}, idempotency_key="order-42")
    try:
        result = await engine.wait(execution_id, 5)
    except ExecutionNotFoundError:
        pytest.fail("the corrected start returned the id of an execution that does not exist")
    assert result.status == ExecutionStatus.SUCCEEDED
