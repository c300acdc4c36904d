"""How user code is called: task context, custom task types, sync functions, pydantic
inputs and outputs, non-JSON results (DESIGN §4 "Workers")."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pydantic import BaseModel

from spane import ExecutionStatus, NodeStatus, TaskContext, TaskRegistry

from .helpers import deploy, fn, node

RETRY_3 = {"max_attempts": 3, "initial_interval": 0.01, "jitter": False}


async def test_task_context_describes_the_attempt(make_engine):
    reg = TaskRegistry()
    contexts: list[TaskContext] = []

    @reg.task("inspect")
    async def inspect(data, context: TaskContext):
        contexts.append(context)
        if context.attempt == 1:
            raise RuntimeError("again")
        return "ok"

    engine = await make_engine(reg)
    wf = await deploy(engine, "context", fn("look", "inspect", retry=RETRY_3))

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    first, second = contexts
    for attempt, ctx in enumerate(contexts, start=1):
        assert ctx.execution_id == result.execution_id
        assert ctx.workflow_id == wf.id
        assert ctx.node_id == "look"
        assert ctx.attempt == attempt
        assert ctx.idempotency_key == f"{result.execution_id}:look:{attempt}"
        assert not ctx.cancelled.is_set()
    assert first.idempotency_key != second.idempotency_key


async def test_task_without_context_parameter(make_engine):
    reg = TaskRegistry()

    @reg.task("plain")
    async def plain(data):
        return {"got": data}

    engine = await make_engine(reg)
    wf = await deploy(engine, "no-ctx", fn("p", "plain"))

    result = await wf.run([1, 2])

    assert result.output == {"got": [1, 2]}


async def test_custom_task_type_receives_its_rendered_config(make_engine):
    reg = TaskRegistry()
    seen: list[tuple[object, dict[str, object], str]] = []

    @reg.task_type("image-resize")
    async def resize(data, config, ctx):
        seen.append((data, config, ctx.node_id))
        return {"width": config["width"], "source": data["url"]}

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "custom",
        node(
            "thumb",
            "image-resize",
            config={
                "width": "${ input.size }",
                "mode": "fit",
                "label": "w=${ input.size }",
            },
        ),
    )

    result = await wf.run({"url": "http://x/y.png", "size": 128})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"width": 128, "source": "http://x/y.png"}
    assert seen == [
        (
            {"url": "http://x/y.png", "size": 128},
            {"width": 128, "mode": "fit", "label": "w=128"},
            "thumb",
        )
    ]


async def test_custom_task_type_sync_handler_and_input_override(make_engine):
    reg = TaskRegistry()

    @reg.task_type("concat")
    def concat(data, config):
        return config["sep"].join(data)

    engine = await make_engine(reg)
    wf = await deploy(
        engine, "custom-sync", node("join", "concat", config={"sep": "-"}, input="${ input.parts }")
    )

    result = await wf.run({"parts": ["a", "b", "c"]})

    assert result.output == "a-b-c"


async def test_sync_functions_run_in_threads_in_parallel(make_engine):
    reg = TaskRegistry()
    barrier = threading.Barrier(2, timeout=5)
    threads: list[str] = []

    @reg.task("blocking")
    def blocking(data, ctx):
        threads.append(threading.current_thread().name)
        barrier.wait()  # both must be running at once, in different threads
        return data * 2

    engine = await make_engine(reg)
    wf = await deploy(engine, "sync", fn("a", "blocking", input=1), fn("b", "blocking", input=2))

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"a": 2, "b": 4}
    assert len(set(threads)) == 2
    assert threading.main_thread().name not in threads


async def test_sync_function_exception_fails_the_attempt(make_engine):
    reg = TaskRegistry()

    @reg.task("divide")
    def divide(data):
        return data["a"] / data["b"]

    engine = await make_engine(reg)
    wf = await deploy(engine, "sync-error", fn("d", "divide"))

    result = await wf.run({"a": 1, "b": 0})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "ZeroDivisionError"


class Order(BaseModel):
    id: int
    total: float
    email: str


class Receipt(BaseModel):
    order_id: int
    charged: float


async def test_pydantic_input_is_validated_and_pydantic_output_dumped(make_engine):
    reg = TaskRegistry()
    received: list[Any] = []

    @reg.task("charge")
    async def charge(order: Order, ctx: TaskContext) -> Receipt:
        received.append(order)
        return Receipt(order_id=order.id, charged=order.total)

    engine = await make_engine(reg)
    wf = await deploy(engine, "pydantic", fn("charge", "charge"))

    result = await wf.run({"id": 7, "total": "12.5", "email": "a@b.c"})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {"order_id": 7, "charged": 12.5}
    [order] = received
    assert isinstance(order, Order)
    assert order.total == 12.5


async def test_pydantic_validation_failure_is_non_retryable_and_names_the_fields(make_engine):
    reg = TaskRegistry()
    calls: list[Any] = []

    @reg.task("charge")
    async def charge(order: Order) -> dict[str, object]:
        calls.append(order)
        return {}

    engine = await make_engine(reg)
    wf = await deploy(engine, "pydantic-bad", fn("charge", "charge", retry=RETRY_3))

    result = await wf.run({"id": "seven", "total": 1})

    assert result.status == ExecutionStatus.FAILED
    assert calls == []
    assert result.error is not None
    assert result.error.node_id == "charge"
    assert result.error.attempt == 1
    assert "id" in result.error.message
    assert "email" in result.error.message
    state = (await engine.status(result.execution_id)).nodes["charge"]
    assert (state.status, state.attempt) == (NodeStatus.FAILED, 1)


async def test_non_json_result_fails_the_attempt_with_a_clear_error(make_engine):
    reg = TaskRegistry()
    calls: list[int] = []

    @reg.task("weird")
    async def weird(data, ctx):
        calls.append(ctx.attempt)
        return {"when": object()}

    engine = await make_engine(reg)
    wf = await deploy(engine, "non-json", fn("w", "weird", retry=RETRY_3))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "w"
    assert "JSON" in result.error.message
    # the same code returns the same value again: retrying would not help
    assert calls == [1]


async def test_task_returning_none_succeeds_with_null_output(make_engine):
    reg = TaskRegistry()

    @reg.task("nothing")
    async def nothing(data):
        await asyncio.sleep(0)

    engine = await make_engine(reg)
    wf = await deploy(engine, "none", fn("n", "nothing"))

    result = await wf.run(1)

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output is None
    assert (await engine.status(result.execution_id)).nodes["n"].status == NodeStatus.SUCCEEDED


async def test_oversized_output_fails_the_node_naming_the_limit(make_engine):
    reg = TaskRegistry()
    calls: list[int] = []

    @reg.task("huge")
    async def huge(data, ctx):
        calls.append(ctx.attempt)
        return "x" * (1024 * 1024 + 10)

    engine = await make_engine(reg)
    wf = await deploy(engine, "huge-output", fn("h", "huge", retry=RETRY_3))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "h"
    assert "limit" in result.error.message
    assert calls == [1]
    assert (await engine.status(result.execution_id)).nodes["h"].output is None


async def test_sync_task_sees_cancellation_through_its_context(make_engine):
    reg = TaskRegistry()
    outcome: dict[str, bool] = {}
    stopped = threading.Event()

    @reg.task("polls")
    def polls(data, ctx):
        for _ in range(500):
            if ctx.cancelled.is_set():
                outcome["saw_cancel"] = True
                break
            threading.Event().wait(0.01)
        stopped.set()
        return "finished"

    @reg.task("fails")
    async def fails(data):
        await asyncio.sleep(0.05)
        raise RuntimeError("sibling failed")

    engine = await make_engine(reg)
    wf = await deploy(engine, "sync-cancel", fn("poll", "polls"), fn("bad", "fails"))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert await asyncio.to_thread(stopped.wait, 5)
    assert outcome == {"saw_cancel": True}
    state = (await engine.status(result.execution_id)).nodes["poll"]
    assert state.status == NodeStatus.CANCELLED
    assert state.output is None
