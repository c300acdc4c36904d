"""Worker pools per task type: names, validation, where a task is routed, the CLI's
``--pool`` values and the pool table, the memory bus's queues and counts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
import typer

from spane.bus.base import Delivery, QueueStats
from spane.bus.codec import decode_task, encode_task
from spane.bus.memory import MemoryBus
from spane.cli.pools import parse_pools, pool_lines
from spane.compiler.compile import checksum, compile_plan
from spane.errors import InvalidWorkflowError
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import TaskMessage
from spane.schemas.pools import PoolSpec, node_pool, parse_pool_spec, workflow_pools
from spane.schemas.workflow import WorkflowSpec
from tests.unit.harness import Harness


def fn(node_id: str, *after: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "function": "t.fn", "after": list(after), **fields}


def http(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "http", "request": {"url": "http://x"}, **fields}


def custom(node_id: str, node_type: str = "image-resize", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, **fields}


def workflow(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "w", "nodes": list(nodes), **extra}


def problems(data: dict[str, Any]) -> dict[str, str]:
    """location -> message of every problem the loader and the compiler report."""
    with pytest.raises(InvalidWorkflowError) as caught:
        compile_plan(spec_from_data(data))
    return {problem.location: problem.message for problem in caught.value.problems}


def task_of(data: dict[str, Any], node_id: str) -> TaskMessage:
    harness = Harness(spec_from_data(data)).start({"x": 1})
    while harness.tasks:
        task = harness.tasks.popleft()
        if task.node_id == node_id:
            return task
        harness.complete(task)
    raise AssertionError(f"{node_id} was never dispatched")


# ------------------------------------------------------------------ names
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("function", PoolSpec("function", "function")),
        ("http", PoolSpec("http", "http")),
        ("function:scoring", PoolSpec("function", "scoring")),
        (" image-resize:gpu.large_1 ", PoolSpec("image-resize", "gpu.large_1")),
    ],
)
def test_pool_specs_parse(text: str, expected: PoolSpec) -> None:
    assert parse_pool_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "cannot be empty"),
        ("function:", "give a pool after ':'"),
        (":scoring", "cannot be empty"),
        ("Function", "not a valid pool name"),
        ("function:Scoring", "not a valid pool name"),
        ("function:a:b", "not a valid pool name"),
        ("function:9lives", "not a valid pool name"),
        ("function:" + "p" * 129, "longer than 128"),
    ],
)
def test_bad_pool_specs_say_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_pool_spec(text)


def test_a_pool_spec_prints_as_it_is_written() -> None:
    assert [str(parse_pool_spec(t)) for t in ("http", "function:scoring")] == [
        "http",
        "function:scoring",
    ]


# ------------------------------------------------------------- validation
def test_bad_pool_names_are_problems_at_their_location() -> None:
    found = problems(
        workflow(
            fn("a", pool="Scoring"),
            http("b", pool="a:b"),
            custom("c", pool="9x"),
            {
                "id": "loop",
                "type": "repeat",
                "times": 2,
                "body": {"nodes": [fn("inner", pool="has space")]},
            },
            defaults={"pool": "UPPER"},
        )
    )
    assert set(found) == {
        "nodes[0].pool",
        "nodes[1].pool",
        "nodes[2].pool",
        "nodes[3].body.nodes[0].pool",
        "defaults.pool",
    }
    assert found["nodes[0].pool"] == (
        "'Scoring' is not a valid pool name: a lowercase letter, then lowercase letters, "
        "digits, '-', '_' or '.'"
    )


def test_a_pool_on_a_control_node_is_an_unknown_field() -> None:
    found = problems(workflow(fn("a"), {"id": "n", "type": "noop", "after": ["a"], "pool": "x"}))
    assert found == {"nodes[1].pool": "unknown field"}


def test_a_builtin_types_pool_runs_only_that_type() -> None:
    found = problems(workflow(fn("a", pool="http"), http("b", pool="function")))
    assert found == {
        "nodes[0].pool": "pool 'http' runs 'http' tasks; a 'function' node cannot run there",
        "nodes[1].pool": "pool 'function' runs 'function' tasks; a 'http' node cannot run there",
    }


def test_one_pool_carries_one_task_type() -> None:
    found = problems(workflow(fn("a", pool="shared"), custom("b", pool="shared")))
    assert found == {
        "nodes[1].pool": "pool 'shared' gets 'image-resize' tasks here but 'function' tasks "
        "from nodes[0]; a worker serves one task type per pool"
    }


def test_a_default_pool_clash_is_reported_once_at_defaults() -> None:
    found = problems(
        workflow(
            custom("img", pool="shared"),
            fn("a", "img"),
            fn("b", "img"),
            {"id": "loop", "type": "repeat", "times": 2, "body": {"nodes": [fn("inner")]}},
            defaults={"pool": "shared"},
        )
    )
    assert list(found) == ["defaults.pool"]
    assert "'function' tasks here but 'image-resize' tasks from nodes[0]" in found["defaults.pool"]


def test_a_custom_types_own_name_as_pool_is_fine() -> None:
    compile_plan(spec_from_data(workflow(custom("a", pool="image-resize"), fn("b", pool="f"))))


# ------------------------------------------------------------------ routing
def test_the_pool_comes_from_the_node_then_defaults_for_functions_then_the_type() -> None:
    spec = spec_from_data(
        workflow(
            fn("own", pool="scoring"),
            fn("inherits"),
            http("web"),
            http("web2", pool="egress"),
            custom("img"),
            custom("img2", pool="gpu"),
            {"id": "n", "type": "noop"},
            defaults={"pool": "batch"},
        )
    )
    pools = {node.id: node_pool(node, spec.defaults) for node in spec.nodes}
    assert pools == {
        "own": "scoring",
        "inherits": "batch",
        "web": "http",
        "web2": "egress",
        "img": "image-resize",
        "img2": "gpu",
        "n": None,
    }
    assert workflow_pools(spec) == {
        PoolSpec("function", "scoring"),
        PoolSpec("function", "batch"),
        PoolSpec("http", "http"),
        PoolSpec("http", "egress"),
        PoolSpec("image-resize", "image-resize"),
        PoolSpec("image-resize", "gpu"),
    }


def test_loop_bodies_inherit_the_default_pool() -> None:
    spec = spec_from_data(
        workflow(
            {"id": "loop", "type": "repeat", "times": 1, "body": {"nodes": [fn("inner")]}},
            defaults={"pool": "batch"},
        )
    )
    assert workflow_pools(spec) == {PoolSpec("function", "batch")}
    plan = compile_plan(spec)
    body = plan.node("loop").body
    assert body is not None
    assert body.node("inner").pool == "batch"


def test_a_task_message_carries_its_nodes_pool() -> None:
    data = workflow(fn("a", pool="scoring"), fn("b", "a"), http("c", pool="egress"))
    task = task_of(data, "a")
    assert (task.pool, task.pool_name) == ("scoring", "scoring")
    web = task_of(data, "c")
    assert (web.type, web.pool_name) == ("http", "egress")


def test_a_task_message_carries_the_default_pool() -> None:
    task = task_of(workflow(fn("a"), defaults={"pool": "batch"}), "a")
    assert (task.type, task.pool, task.pool_name) == ("function", "batch", "batch")


def test_without_a_named_pool_a_task_message_is_what_it_always_was() -> None:
    task = task_of(workflow(fn("a"), custom("b", pool="image-resize")), "a")
    assert (task.pool, task.pool_name) == (None, "function")
    assert "pool" not in task.model_dump(mode="json")
    assert b'"pool"' not in encode_task(task)
    same_pool = task_of(workflow(fn("a"), custom("b", pool="image-resize")), "b")
    assert same_pool.pool is None  # naming the type's own pool changes nothing
    assert same_pool.pool_name == "image-resize"


def test_a_pooled_task_message_round_trips_the_codec() -> None:
    task = task_of(workflow(fn("a", pool="scoring")), "a")
    assert decode_task(encode_task(task)) == task


def test_definitions_without_pools_keep_their_checksum_text() -> None:
    """An unset pool is left out of the canonical document, so a definition registered
    before pools existed keeps its checksum (and its version when registered again)."""
    spec = spec_from_data(workflow(fn("a"), http("b"), custom("c")))
    document = spec.model_dump(mode="json", by_alias=True)
    assert "pool" not in json.dumps(document)
    pooled = spec_from_data(workflow(fn("a", pool="p"), http("b"), custom("c")))
    assert checksum(pooled) != checksum(spec)


def test_a_pool_survives_the_spec_round_trip() -> None:
    spec = spec_from_data(workflow(fn("a", pool="p"), defaults={"pool": "d"}))
    again = WorkflowSpec.model_validate(spec.model_dump(mode="json", by_alias=True))
    assert again == spec
    assert checksum(again) == checksum(spec)


# --------------------------------------------------------------- memory bus
async def test_the_memory_bus_routes_by_pool_and_counts_per_pool() -> None:
    bus = MemoryBus()
    default = task_of(workflow(fn("a")), "a")
    pooled = task_of(workflow(fn("a", pool="scoring")), "a")
    await bus.publish_tasks([default, pooled, pooled.model_copy(update={"task_id": "x"})])
    stats = await bus.pool_stats(["function", "scoring", "never"])
    assert stats == {
        "function": QueueStats(1, 0),
        "scoring": QueueStats(2, 0),
        "never": QueueStats(0, 0),
    }
    got: list[str] = []
    taken = asyncio.Event()

    async def handler(batch: Sequence[Delivery[TaskMessage]]) -> None:
        got.extend(d.message.pool_name for d in batch)
        taken.set()

    consumer = await bus.consume_tasks("scoring", handler, prefetch=10)
    await asyncio.wait_for(taken.wait(), 5)
    assert got == ["scoring", "scoring"]
    assert (await bus.pool_stats(["scoring", "function"])) == {
        "scoring": QueueStats(0, 1),
        "function": QueueStats(1, 0),
    }
    await consumer.stop()
    assert (await bus.pool_stats(["scoring"]))["scoring"] == QueueStats(0, 0)


# ---------------------------------------------------------------------- CLI
def test_worker_pool_options_parse_in_order_without_repeats() -> None:
    specs = parse_pools(["function", "function:scoring", "function", "http"])
    assert [str(spec) for spec in specs] == ["function", "function:scoring", "http"]


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ([], "at least one pool"),
        (["Function"], "not a valid pool name"),
        (["function:shared", "http:shared"], "pool 'shared' is given for two task types"),
    ],
)
def test_bad_worker_pool_options_are_usage_errors(values: list[str], says: str) -> None:
    with pytest.raises(typer.BadParameter, match=says):
        parse_pools(values)


def test_the_pool_table_flags_waiting_tasks_nobody_consumes() -> None:
    lines = pool_lines(
        {"scoring": QueueStats(5, 0), "function": QueueStats(2, 3), "http": QueueStats(0, 0)}
    )
    assert [line.split() for line in lines] == [
        ["pool", "waiting", "consumers"],
        ["function", "2", "3"],
        ["http", "0", "0"],
        ["scoring", "5", "0", "(no", "consumer)"],
    ]


def test_spane_status_without_an_id_shows_the_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client engine of ``spane status`` swapped for one over a memory bus holding two
    tasks for pool ``scoring``, which a registered workflow names."""
    import contextlib
    from collections.abc import AsyncIterator

    from typer.testing import CliRunner

    from spane import Engine, TaskRegistry
    from spane.cli import ops
    from spane.cli.main import EXIT_OK, app
    from spane.config import Settings

    bus = MemoryBus()
    pooled = workflow(fn("a", pool="scoring"))

    @contextlib.asynccontextmanager
    async def client(process: str) -> AsyncIterator[Engine]:
        settings = Settings(gc_tuning=False)
        engine = Engine(
            settings=settings, bus=bus, registry=TaskRegistry(), pools=[], run_orchestrator=False
        )
        async with engine:
            await engine.register(pooled)
            task = task_of(pooled, "a")
            await bus.publish_tasks([task, task.model_copy(update={"task_id": "e1:a:2"})])
            yield engine

    monkeypatch.setattr(ops, "_client", client)
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == EXIT_OK, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["pool", "waiting", "consumers"],
        ["function", "0", "0"],
        ["http", "0", "0"],
        ["scoring", "2", "0", "(no", "consumer)"],
    ]


def test_spane_worker_refuses_a_bad_pool_before_connecting() -> None:
    from typer.testing import CliRunner

    from spane.cli.main import EXIT_USAGE, app

    result = CliRunner().invoke(app, ["worker", "--pool", "function", "--pool", "function:"])
    assert result.exit_code == EXIT_USAGE
    assert "give a pool after ':'" in result.output


async def test_an_engine_with_explicit_pools_runs_only_those() -> None:
    from spane import Engine, TaskRegistry
    from spane.config import Settings
    from spane.errors import TaskNotFoundError

    reg = TaskRegistry()

    @reg.task("t.fn")
    async def run(data: Any, ctx: Any) -> str:
        return str(ctx.pool)

    data = workflow(fn("a", pool="scoring"))
    settings = Settings(gc_tuning=False)
    async with Engine(registry=reg, settings=settings, pools=["function"]) as engine:
        await engine.register(data)
        with pytest.raises(TaskNotFoundError, match="on pool 'scoring', but no worker"):
            await engine.start("w", {})
        assert engine.pool_names() == ["function"]
    async with Engine(registry=reg, settings=settings, pools=["function:scoring"]) as engine:
        await engine.register(data)
        result = await engine.run("w", {}, timeout=10)
        assert (result.succeeded, result.output) == (True, "scoring")
        assert engine.pool_names() == ["scoring"]
