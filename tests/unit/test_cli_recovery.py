"""``spane retry`` and ``spane replay``: the commands talk to a deployment through
``spane.cli.ops._client``; here that client is an embedded engine over stores shared
between the test's own run and the command's, so the command finds the execution."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from typer.testing import CliRunner

from spane import Engine, TaskError, TaskRegistry
from spane.cli import ops
from spane.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, app
from spane.config import Settings
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore

FLOW = {
    "id": "cli-flow",
    "nodes": [
        {"id": "a", "function": "cli.step"},
        {"id": "b", "function": "cli.step", "after": ["a"]},
    ],
}


class Deployment:
    """Stores that outlive engines, and the tasks' run counts."""

    def __init__(self) -> None:
        self.state = MemoryStateStore()
        self.definitions = MemoryDefinitionStore()
        self.runs: Counter[str] = Counter()
        self.broken: set[str] = set()
        self.registry = TaskRegistry()

        @self.registry.task("cli.step")
        async def step(data: Any, ctx: Any) -> Any:
            self.runs[ctx.node_id] += 1
            if ctx.node_id in self.broken:
                raise TaskError(f"{ctx.node_id} is broken", non_retryable=True)
            return {"n": (data or {}).get("n", 0) + 1}

    def engine(self) -> Engine:
        return Engine(
            registry=self.registry,
            settings=Settings(gc_tuning=False),
            state=self.state,
            definitions=self.definitions,
        )

    def run(self, data: Any) -> str:
        async def go() -> str:
            async with self.engine() as engine:
                await engine.register(FLOW)
                return (await engine.run("cli-flow", data, timeout=10)).execution_id

        return asyncio.run(go())


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch) -> Deployment:
    deployment = Deployment()

    @contextlib.asynccontextmanager
    async def client(process: str) -> AsyncIterator[Engine]:
        async with deployment.engine() as engine:
            yield engine

    monkeypatch.setattr(ops, "_client", client)
    return deployment


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_retry_waits_and_prints_the_output(deployment: Deployment) -> None:
    deployment.broken.add("b")
    execution_id = deployment.run({"n": 0})
    deployment.broken.clear()
    result = invoke("retry", execution_id, "--wait", "--timeout", "10")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout) == {"n": 2}
    assert deployment.runs == Counter({"a": 1, "b": 2})


def test_retry_refused_prints_the_reason(deployment: Deployment) -> None:
    execution_id = deployment.run({"n": 0})
    result = invoke("retry", execution_id)
    assert result.exit_code == EXIT_FAILED
    assert "succeeded: nothing to retry" in result.output


def test_replay_prints_the_new_id_and_with_wait_the_output(deployment: Deployment) -> None:
    old = deployment.run({"n": 5})
    result = invoke("replay", old, "--from", "b", "--wait", "--timeout", "10")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout) == {"n": 7}
    result = invoke("replay", old, "--from", "a", "--input", '{"n": 100}')
    assert result.exit_code == EXIT_OK, result.output
    new_id = result.stdout.strip()
    assert new_id != old

    async def status() -> Any:
        return await deployment.state.get_meta(new_id)

    meta = asyncio.run(status())  # started (its run ended with the command's engine)
    assert meta.replay_of == old
    assert meta.input == {"n": 100}
    assert deployment.runs["b"] >= 2


def test_replay_from_an_unknown_node_is_a_usage_error(deployment: Deployment) -> None:
    old = deployment.run(None)
    result = invoke("replay", old, "--from", "zz")
    assert result.exit_code == EXIT_USAGE
    assert "'zz' is not a node of workflow 'cli-flow' v1 (nodes: a, b)" in result.output
    assert invoke("replay", old).exit_code == EXIT_USAGE  # --from is required
