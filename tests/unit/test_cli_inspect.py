"""``spane list``, ``spane history``, ``spane dead-letters`` and ``spane api`` (CliRunner),
on the embedded backends: the commands' client engine is swapped for one over memory
stores that a real embedded engine filled first."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from spane import Engine, TaskRegistry
from spane.bus.codec import encode_inbox
from spane.bus.memory import MemoryBus
from spane.cli import ops
from spane.cli.main import EXIT_OK, EXIT_USAGE, app
from spane.config import Settings
from spane.schemas.messages import PauseCommand
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore

CHAIN = {
    "id": "chain",
    "nodes": [
        {"id": "first", "function": "t.add_one"},
        {"id": "second", "function": "t.add_one", "after": ["first"]},
    ],
}
PAUSE = encode_inbox(PauseCommand(execution_id="e1")).decode()
FLAKY = {
    "id": "flaky",
    "nodes": [
        {"id": "try", "function": "t.flaky", "retry": {"max_attempts": 3, "initial_interval": 0}},
        {"id": "boom", "function": "t.boom", "after": ["try"]},
    ],
}


@dataclass
class World:
    state: MemoryStateStore
    definitions: MemoryDefinitionStore
    chain_ids: list[str]
    flaky_id: str
    bus: MemoryBus | None = None


def _registry() -> TaskRegistry:
    reg = TaskRegistry()
    calls = {"flaky": 0}

    @reg.task("t.add_one")
    async def add_one(data: dict[str, Any]) -> dict[str, Any]:
        return {"n": data["n"] + 1}

    @reg.task("t.flaky")
    async def flaky(data: Any) -> Any:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise RuntimeError(f"try {calls['flaky']}")
        return data

    @reg.task("t.boom")
    async def boom(data: Any) -> Any:
        raise ValueError("boom")

    return reg


async def _fill() -> World:
    engine = Engine(registry=_registry(), settings=Settings(gc_tuning=False))
    async with engine:
        await engine.register(CHAIN)
        await engine.register(FLAKY)
        chain_ids = [(await engine.run("chain", {"n": n}, timeout=10)).execution_id for n in (1, 2)]
        flaky = await engine.run("flaky", {"x": 1}, timeout=10)
        assert not flaky.succeeded
        for i in range(3):
            await engine.definitions.record_dead_letter(
                {"id": f"dl{i}", "dead_at": 1_700_000_000.0 + i, "reason": f"bad {i}",
                 "queue": "spane.orchestrator", "exchange": "spane.orchestrator",
                 "routing_key": "", "message_id": f"m{i}", "body": PAUSE,
                 "body_encoding": "utf-8", "headers": {"h": i}, "count": 1}
            )  # fmt: skip
    assert isinstance(engine.state, MemoryStateStore)
    assert isinstance(engine.definitions, MemoryDefinitionStore)
    return World(engine.state, engine.definitions, chain_ids, flaky.execution_id)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    filled = asyncio.run(_fill())

    @contextlib.asynccontextmanager
    async def client(process: str) -> AsyncIterator[Engine]:
        filled.bus = MemoryBus()
        engine = Engine(
            settings=Settings(gc_tuning=False),
            bus=filled.bus,
            state=filled.state,
            definitions=filled.definitions,
            pools=[],
            run_orchestrator=False,
        )
        async with engine:
            yield engine

    monkeypatch.setattr(ops, "_client", client)
    return filled


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unexpected {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    return result


def as_json(result: Result) -> Any:
    assert result.exit_code == EXIT_OK, result.output
    return json.loads(result.stdout)


def test_list_filters_by_workflow_and_status_newest_first(world: World) -> None:
    everything = as_json(invoke("list", "-o", "json"))
    assert len(everything) == 3
    created = [item["created_at"] for item in everything]
    assert created == sorted(created, reverse=True)
    chains = as_json(invoke("list", "--workflow", "chain", "-o", "json"))
    assert {item["id"] for item in chains} == set(world.chain_ids)
    assert all(item["status"] == "succeeded" for item in chains)
    failed = as_json(invoke("list", "--status", "FAILED", "-o", "json"))
    assert [item["id"] for item in failed] == [world.flaky_id]
    assert failed[0]["error"]["message"] == "boom"
    assert len(as_json(invoke("list", "--limit", "1", "-o", "json"))) == 1
    text = invoke("list", "--workflow", "chain")
    assert text.exit_code == EXIT_OK
    assert all(execution_id in text.stdout for execution_id in world.chain_ids)
    assert world.flaky_id not in text.stdout


def test_list_refuses_an_unknown_status(world: World) -> None:
    result = invoke("list", "--status", "bogus")
    assert result.exit_code == EXIT_USAGE
    assert "succeeded" in result.output


def test_history_puts_node_starts_and_ends_in_time_order(world: World) -> None:
    body = as_json(invoke("history", world.flaky_id, "-o", "json"))
    assert body["status"] == "failed"
    events = body["events"]
    names = [(e["event"], e.get("node")) for e in events]
    assert names == [
        ("execution.started", None),
        ("node.started", "try"),
        ("node.succeeded", "try"),
        ("node.started", "boom"),
        ("node.failed", "boom"),
        ("execution.failed", None),
    ]
    times = [e["time"] for e in events]
    assert times == sorted(times)
    by_name = {(e["event"], e.get("node")): e for e in events}
    assert by_name[("node.succeeded", "try")]["attempt"] == 3  # two retries
    assert by_name[("node.failed", "boom")]["error"]["message"] == "boom"
    text = invoke("history", world.flaky_id)
    assert "node.failed boom (attempt 1): ValueError: boom" in text.stdout


def test_history_of_an_unknown_execution_exits_2(world: World) -> None:
    result = invoke("history", "nope")
    assert result.exit_code == EXIT_USAGE
    assert "nope" in result.output


def test_dead_letters_list_pages_show_redrive_drop(world: World) -> None:
    first = as_json(invoke("dead-letters", "list", "--limit", "2", "-o", "json"))
    assert [e["id"] for e in first["items"]] == ["dl2", "dl1"]
    assert "body" not in first["items"][0]
    rest = as_json(invoke("dead-letters", "list", "--cursor", first["next_cursor"], "-o", "json"))
    assert [e["id"] for e in rest["items"]] == ["dl0"]
    assert rest["next_cursor"] is None

    shown = as_json(invoke("dead-letters", "show", "dl1", "-o", "json"))
    assert shown["body"] == PAUSE
    assert shown["headers"] == {"h": 1}
    assert "bad 1" in invoke("dead-letters", "show", "dl1").stdout

    redriven = as_json(invoke("dead-letters", "redrive", "dl1", "-o", "json"))
    assert redriven == {
        "id": "dl1", "exchange": "spane.orchestrator", "routing_key": "", "message_id": "m1"
    }  # fmt: skip
    assert world.bus is not None
    assert world.bus.pending()["inbox"] == 1  # it arrived again where it was first sent

    assert invoke("dead-letters", "drop", "dl0").exit_code == EXIT_OK
    left = as_json(invoke("dead-letters", "list", "-o", "json"))
    assert [e["id"] for e in left["items"]] == ["dl2"]


def test_dead_letters_unknown_ids_and_bad_cursors_exit_2_and_change_nothing(world: World) -> None:
    for verb in ("show", "redrive", "drop"):
        result = invoke("dead-letters", verb, "nope")
        assert result.exit_code == EXIT_USAGE, verb
        assert "dead letter 'nope' not found" in result.output
    bad = invoke("dead-letters", "list", "--cursor", "garbage")
    assert bad.exit_code == EXIT_USAGE
    left = as_json(invoke("dead-letters", "list", "-o", "json"))
    assert [e["id"] for e in left["items"]] == ["dl2", "dl1", "dl0"]


def test_api_needs_the_server_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPANE_AMQP_URL", "SPANE_REDIS_URL", "SPANE_MONGODB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPANE_REDIS_URL", "redis://127.0.0.1:1/0")
    result = invoke("api", "--port", "0")
    assert result.exit_code == EXIT_USAGE
    assert "SPANE_AMQP_URL" in result.output
    assert "SPANE_MONGODB_URL" in result.output
    assert "SPANE_REDIS_URL" not in result.output  # the one set is not asked for


def test_status_prints_json_on_request(world: World) -> None:
    body = as_json(invoke("status", world.chain_ids[0], "-o", "json"))
    assert body["id"] == world.chain_ids[0]
    assert body["status"] == "succeeded"
    assert body["output"] == {"n": 3}  # input {"n": 1}, two add_one
    assert set(body["nodes"]) == {"first", "second"}
    assert body["nodes"]["second"]["status"] == "succeeded"
    assert invoke("status", world.chain_ids[0], "-o", "yaml").exit_code == EXIT_USAGE
