"""``python -m bench --chaos``: recovery as performance.

A real deployment with two orchestrators and two workers (:class:`~bench.deploy.Deployment`
with ``replicas=2``, default lease and liveness settings) runs W3's diamond with the
``bench.count`` task (each node's output counts its upstreams, so the last node's output
is known in advance: :func:`expected_count`). One run without faults gives the baseline;
then the same W3 run again, and once :attr:`ChaosOptions.kill_at` of its executions have
finished, one worker and one orchestrator are killed with SIGKILL (not restarted: the
survivors carry on). Reported: seconds from the kill to the last execution's end,
against the baseline's time for the same remaining share of the work, and whether every
execution succeeded with the right output.

What bounds the recovery: the dead orchestrator's unacknowledged inbox messages go back
to the queue when RabbitMQ sees its connection close (at once), but the attempts the dead
worker had claimed run again only when their claim lapses (``SPANE_TASK_LEASE``, 10 s)
and the orchestrator's liveness check notices it (every ``SPANE_LIVENESS``, 5 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.deploy import Deployment, Servers
from bench.machine import machine_info
from bench.report import format_table
from bench.tasks import COUNT
from bench.workloads import DIAMOND_EDGES
from spane import Engine
from spane.config import Settings

CHAOS_ID = "bench-chaos-diamond"
VICTIMS = ("worker", "orchestrator")
"""The processes killed (the first replica of each)."""


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    executions: int = 200
    kill_at: float = 0.3
    """Share of the executions finished when the kill comes."""
    timeout: float = 300.0
    concurrency: int = 64

    def __post_init__(self) -> None:
        if self.executions < 1 or not 0 <= self.kill_at < 1 or self.timeout <= 0:
            raise ValueError("--chaos needs executions >= 1 and 0 <= --chaos-at < 1")


@dataclass(slots=True)
class ChaosResult:
    options: ChaosOptions
    machine: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, float] = field(default_factory=dict)
    baseline_s: float | None = None
    total_s: float | None = None
    kill_after_s: float | None = None
    recovery_s: float | None = None
    """Seconds from the kill to the end of the last execution."""
    finished_before_kill: int = 0
    succeeded: int = 0
    wrong: list[str] = field(default_factory=list)
    """Executions that failed or ended with the wrong output."""
    error: str | None = None
    deployment: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------- pure parts
def expected_count(edges: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """``n`` of every node's ``bench.count`` output: 1 for a root, else 1 + the sum of
    its upstreams'."""
    counts: dict[str, int] = {}

    def count(node: str) -> int:
        if node not in counts:
            counts[node] = 1 + sum(count(parent) for parent in edges[node])
        return counts[node]

    for node in edges:
        count(node)
    return counts


def chaos_workflow() -> dict[str, Any]:
    """W3's diamond with ``bench.count`` nodes."""
    nodes = []
    for node, after in DIAMOND_EDGES.items():
        spec: dict[str, Any] = {"id": node, "function": COUNT}
        if after:
            spec["after"] = list(after)
        nodes.append(spec)
    return {"id": CHAOS_ID, "nodes": nodes}


def expected_output(seed: int) -> dict[str, int]:
    sink = next(n for n in DIAMOND_EDGES if not any(n in p for p in DIAMOND_EDGES.values()))
    return {"seed": seed, "n": expected_count(DIAMOND_EDGES)[sink]}


def render_chaos(result: ChaosResult) -> str:
    o = result.options

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    remaining = 1 - result.finished_before_kill / o.executions
    expected = None if result.baseline_s is None else result.baseline_s * remaining
    rows = [
        ["baseline W3 run, no faults", seconds(result.baseline_s)],
        ["chaos W3 run, start to last execution", seconds(result.total_s)],
        ["kill -9 at (after start)", seconds(result.kill_after_s)],
        ["executions finished before the kill", f"{result.finished_before_kill}/{o.executions}"],
        ["kill -> all executions finished", seconds(result.recovery_s)],
        ["  the same share of work without faults", seconds(expected)],
        ["succeeded with the right output", f"{result.succeeded}/{o.executions}"],
    ]
    lease = result.settings
    parts = [
        f"SPANE recovery: {o.executions} x 10-node diamond (bench.count), 2 orchestrators + "
        f"2 workers (concurrency {o.concurrency}); kill -9 one worker and one orchestrator "
        f"when {o.kill_at:.0%} of the executions have finished",
        "",
        format_table(["chaos", "value"], rows),
        f"settings: task_lease {lease.get('task_lease')} s, liveness {lease.get('liveness')} s "
        "(defaults): an attempt of the dead worker runs again once its claim lapses and a "
        "liveness check sees it",
    ]
    parts += [f"wrong: {entry}" for entry in result.wrong[:10]]
    if result.error:
        parts.append(f"ERROR: {result.error}")
    return "\n".join(parts)


def chaos_document(result: ChaosResult) -> dict[str, Any]:
    return asdict(result)


# --------------------------------------------------------------------- run
def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _w3(engine: Engine, executions: int, timeout: float, on_done: Any) -> list[Any]:
    async def one(seed: int) -> Any:
        execution_id = await engine.start(CHAOS_ID, {"seed": seed})
        result = await engine.wait(execution_id, timeout)
        on_done()
        return result

    return list(await asyncio.gather(*(one(seed) for seed in range(executions))))


def _check_outputs(results: Sequence[Any]) -> tuple[int, list[str]]:
    wrong = []
    for seed, result in enumerate(results):
        if not result.succeeded:
            wrong.append(f"seed {seed}: {result.status} {result.error}")
        elif result.output != expected_output(seed):
            wrong.append(f"seed {seed}: output {result.output!r}")
    return len(results) - len(wrong), wrong


async def _chaos_run(deployment: Deployment, engine: Engine, result: ChaosResult) -> None:
    o = result.options
    finished = 0
    threshold = max(1, round(o.executions * o.kill_at))
    reached = asyncio.Event()

    def done() -> None:
        nonlocal finished
        finished += 1
        if finished >= threshold:
            reached.set()

    begin = time.perf_counter()
    run = asyncio.ensure_future(_w3(engine, o.executions, o.timeout, done))
    waiter = asyncio.ensure_future(reached.wait())
    await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    killed_at = time.perf_counter()
    result.finished_before_kill = finished
    for name in VICTIMS:
        os.kill(deployment.processes[name].pid, signal.SIGKILL)
    _say(f"  killed {', '.join(VICTIMS)} after {finished}/{o.executions} executions")
    results = await run
    end = time.perf_counter()
    result.kill_after_s = killed_at - begin
    result.recovery_s = end - killed_at
    result.total_s = end - begin
    result.succeeded, result.wrong = _check_outputs(results)


async def run_chaos(options: ChaosOptions, servers: Servers | None = None) -> ChaosResult:
    servers = servers or Servers.from_env()
    defaults = Settings()
    result = ChaosResult(options, machine=machine_info())
    result.settings = {"task_lease": defaults.task_lease, "liveness": defaults.liveness}
    deployment = Deployment(servers, concurrency=options.concurrency, replicas=2)
    _say(f"chaos: namespace {deployment.namespace}, logs in {deployment.logs}")
    result.deployment = {"namespace": deployment.namespace, "logs": str(deployment.logs)}
    try:
        deployment.start()
        engine = deployment.client()
        try:
            await engine.open()
            await deployment.wait_ready(engine)
            await engine.register(chaos_workflow())
            begin = time.perf_counter()
            baseline = await _w3(engine, options.executions, options.timeout, lambda: None)
            result.baseline_s = time.perf_counter() - begin
            ok, wrong = _check_outputs(baseline)
            if wrong:
                raise RuntimeError(f"the baseline run went wrong: {wrong[:3]}")
            _say(f"  baseline: {result.baseline_s:.2f} s, {ok} right")
            await _chaos_run(deployment, engine, result)
        finally:
            await engine.close()
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        deployment.stop()
        result.deployment["log_summary"] = deployment.log_summary()
        problems = await deployment.cleanup()
        if problems:
            result.deployment["cleanup_problems"] = problems
        if result.error is None and not result.wrong:
            deployment.remove_logs()
            result.deployment.pop("logs")
    return result
