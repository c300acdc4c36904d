"""Prometheus metrics: an orchestrator and a worker on the in-memory backends run known
workflows; ``/metrics`` is scraped and parsed, and the counts are what the runs did."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from spane import TaskRegistry
from spane.bus.memory import MemoryBus
from spane.engine import Engine
from spane.observability import hooks
from spane.observability.metrics import Metrics
from spane.observability.server import ObservabilityServer
from spane.orchestrator.service import OrchestratorService
from spane.schemas.events import execution_event
from spane.schemas.messages import TaskMessage
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore
from spane.workers.runtime import Worker

WORKFLOW = {
    "id": "shop",
    "nodes": [
        {"id": "a", "function": "m.double"},
        {
            "id": "b",
            "function": "m.flaky",
            "after": ["a"],
            "retry": {"max_attempts": 2, "initial_interval": "10ms", "jitter": False},
        },
    ],
}


def tasks() -> TaskRegistry:
    registry = TaskRegistry()

    @registry.task("m.double")
    def double(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "x": data["x"] * 2}

    @registry.task("m.flaky")
    def flaky(data: dict[str, Any], ctx: Any) -> int:
        if data.get("fail") == "always" or (data.get("fail") == "once" and ctx.attempt == 1):
            raise RuntimeError(f"flaky failed on attempt {ctx.attempt}")
        return int(data["x"])

    return registry


@dataclass
class Stack:
    """An orchestrator, a function worker and a client engine sharing memory backends."""

    metrics: Metrics
    client: Engine
    service: OrchestratorService
    worker: Worker


@contextlib.asynccontextmanager
async def stack(registry: TaskRegistry | None = None) -> AsyncIterator[Stack]:
    registry = registry or tasks()
    metrics = Metrics(process_metrics=False)
    bus, state, definitions = MemoryBus(), MemoryStateStore(), MemoryDefinitionStore()
    client = Engine(
        bus=bus,
        state=state,
        definitions=definitions,
        registry=registry,
        pools=[],
        run_orchestrator=False,
    )
    service = OrchestratorService(bus, state, definitions, metrics=metrics)
    worker = Worker(bus, state, pool="function", registry=registry, metrics=metrics)
    await client.open()
    await service.start()
    await worker.start()
    try:
        yield Stack(metrics, client, service, worker)
    finally:
        await worker.stop(grace=1.0)
        await service.stop()
        await client.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(metrics: Metrics) -> str:
    async with (
        ObservabilityServer(metrics=metrics, checks={}, port=0, host="127.0.0.1") as server,
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


async def test_a_known_run_is_counted_and_scraped() -> None:
    async with stack() as s:
        await s.client.register(WORKFLOW)
        inputs = [{"x": 1}, {"x": 2, "fail": "once"}, {"x": 3}]
        results = [await s.client.run("shop", data, timeout=10) for data in inputs]
        assert [r.output for r in results] == [2, 4, 6]
        scraped = samples(await scrape(s.metrics))

    assert value(scraped, "spane_executions_started_total", workflow="shop") == 3
    assert (
        value(scraped, "spane_executions_finished_total", workflow="shop", status="succeeded") == 3
    )
    assert value(scraped, "spane_executions_in_flight") == 0
    attempts = "spane_node_attempts_total"
    ok = {"workflow": "shop", "type": "function", "outcome": "succeeded"}
    assert value(scraped, attempts, node="a", **ok) == 3
    assert value(scraped, attempts, node="b", **ok) == 3
    assert value(scraped, attempts, node="b", **{**ok, "outcome": "failed"}) == 1
    assert value(scraped, "spane_retries_total", workflow="shop", node="b") == 1
    assert value(scraped, "spane_retries_total", workflow="shop", node="a") == 0
    duration = "spane_node_attempt_duration_seconds_count"
    assert value(scraped, duration, workflow="shop", node="b", type="function") == 4
    assert value(scraped, "spane_task_queue_wait_seconds_count", pool="function") == 7
    assert value(scraped, "spane_orchestrator_batch_size_count") >= 1
    assert value(scraped, "spane_orchestrator_batch_size_sum") >= 3 * 3  # start + 2 results
    assert value(scraped, "spane_orchestrator_batch_duration_seconds_count") >= 1
    assert ("spane_timers_pending", frozenset()) in scraped


async def test_failed_executions_are_counted_by_status() -> None:
    async with stack() as s:
        await s.client.register(WORKFLOW)
        result = await s.client.run("shop", {"x": 1, "fail": "always"}, timeout=10)
        assert result.status == "failed"
        scraped = samples(s.metrics.exposition().decode())
    finished = "spane_executions_finished_total"
    assert value(scraped, finished, workflow="shop", status="failed") == 1
    assert value(scraped, finished, workflow="shop", status="succeeded") == 0
    failed = {"workflow": "shop", "node": "b", "type": "function", "outcome": "failed"}
    assert value(scraped, "spane_node_attempts_total", **failed) == 2


async def test_each_process_has_its_own_registry() -> None:
    first, second = Metrics(process_metrics=False), Metrics(process_metrics=False)
    first.record_batch(3, 0.01)
    assert value(samples(first.exposition().decode()), "spane_orchestrator_batch_size_count") == 1
    assert value(samples(second.exposition().decode()), "spane_orchestrator_batch_size_count") == 0


def test_loop_iterations_are_not_counted_as_executions_children_are() -> None:
    metrics = Metrics(process_metrics=False)

    def event(status: str, **kind: Any) -> tuple[str, Any]:
        return execution_event(
            execution_id="e", workflow_id="w", version=1, status=status, now=0.0, **kind
        )

    metrics.record_outbox(
        [],
        [
            event("started"),
            event("started", child=True),
            event("started", loop_node="loop"),
            event("succeeded", loop_node="loop"),
            event("timed_out", child=True),
            event("paused"),
        ],
    )
    scraped = samples(metrics.exposition().decode())
    assert value(scraped, "spane_executions_started_total", workflow="w") == 2
    assert value(scraped, "spane_executions_finished_total", workflow="w", status="timed_out") == 1
    assert value(scraped, "spane_executions_finished_total", workflow="w", status="succeeded") == 0
    assert value(scraped, "spane_executions_in_flight") == 1


def test_a_worker_clock_behind_the_dispatcher_counts_no_negative_wait() -> None:
    metrics = Metrics(process_metrics=False)
    task = TaskMessage(
        task_id="e:a:1",
        execution_id="e",
        workflow_id="w",
        version=1,
        node_id="a",
        type="function",
        attempt=1,
        dispatched_at=100.0,
    )
    metrics.record_task_start(task, "function", now=99.0)
    scraped = samples(metrics.exposition().decode())
    assert value(scraped, "spane_task_queue_wait_seconds_sum", pool="function") == 0.0
    assert value(scraped, "spane_task_queue_wait_seconds_count", pool="function") == 1


def test_bus_hooks_do_nothing_until_metrics_are_installed_then_count() -> None:
    metrics = Metrics(process_metrics=False)
    hooks.record_dead_letter("spane.orchestrator", "undecodable")  # nowhere to go: no error
    metrics.install()
    try:
        hooks.record_dead_letter("spane.orchestrator", "undecodable")
        hooks.record_dead_letter("spane.tasks.function", "a free-text reason")
        hooks.observe_publish_confirm("tasks", 0.002)
        hooks.observe_publish_confirm("whatever", 0.5)
    finally:
        metrics.uninstall()
    hooks.record_dead_letter("spane.orchestrator", "undecodable")  # uninstalled again
    scraped = samples(metrics.exposition().decode())
    dead = "spane_dead_letters_total"
    assert value(scraped, dead, queue="spane.orchestrator", reason="undecodable") == 1
    assert value(scraped, dead, queue="spane.tasks.function", reason="other") == 1
    assert value(scraped, "spane_publish_confirm_seconds_count", kind="tasks") == 1
    assert value(scraped, "spane_publish_confirm_seconds_count", kind="other") == 1


def test_process_metrics_are_in_the_registry_by_default() -> None:
    scraped = samples(Metrics().exposition().decode())
    assert any(name.startswith("process_") for name, _ in scraped)
