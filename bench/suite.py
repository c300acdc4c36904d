"""Running the workloads: warm-ups, repetitions, timeouts, and both backends.

Every run is bounded by a timeout; a run that fails or times out turns its workload into
an error row (what is still in flight is cancelled) and the suite moves on. The real
backend's processes are stopped and its namespace deleted whatever happens, Ctrl-C
included. With ``events_off`` each backend measures W3 once more with node-level events
turned off: on a fresh embedded engine, or on a second deployment (torn down the same
way). While the timed repetitions run, a :class:`~bench.machine.CpuMeter` records how
much cpu other processes took, so that a busy machine shows in the report, and on the
real backend how much each of its processes (and the servers) took per node execution.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench import tasks
from bench.deploy import Deployment, DeploymentError, Servers
from bench.floor import QUICK_FLOOR, FloorSizes, measure_floor
from bench.machine import CpuMeter, cpu_busy, cpu_seconds, machine_info
from bench.report import (
    EVENTS_OFF_DEPLOYMENT,
    EVENTS_OFF_TITLE,
    EVENTS_OFF_WORKLOAD,
    BenchRun,
    FloorResult,
    WorkloadResult,
    compute_ratios,
    cpu_per_node,
)
from bench.workloads import Sample, Sizes, Workload, build
from spane import Engine
from spane.config import Settings

BACKENDS = ("memory", "real")
CONCURRENCY = 64
RUN_TIMEOUT = {"w1": 120.0, "w2": 120.0, "w3": 180.0}
"""Seconds one run of each workload may take before it is an error."""
BUSY_FRACTION = 0.2
"""Share of the machine's cpu time used by others before the run that earns a warning."""
NODE_EVENTS_OFF_ENV = (("SPANE_NODE_EVENTS", "false"),)
"""The environment that turns node-level events off in a deployment's processes."""


@dataclass(frozen=True, slots=True)
class Options:
    backends: tuple[str, ...] = BACKENDS
    workloads: tuple[str, ...] = ("w1", "w2", "w3")
    repeat: int = 5
    warmup: int = 1
    quick: bool = False
    timeout_scale: float = 1.0
    sizes: Sizes = field(default_factory=Sizes)
    events_off: bool = True
    """Also measure W3 with node-level events turned off (their cost), on each backend."""

    @property
    def wants_events_off(self) -> bool:
        return self.events_off and "w3" in self.workloads


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _brief(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3g}" for name, value in values.items())


def events_off(result: WorkloadResult) -> WorkloadResult:
    """Label a result measured with node events off as its own row."""
    result.workload = EVENTS_OFF_WORKLOAD
    result.title += EVENTS_OFF_TITLE
    return result


# ------------------------------------------------------------- one workload
@dataclass(slots=True)
class Context:
    """What every measurement shares: the options and the cpu meter."""

    options: Options
    meter: CpuMeter = field(default_factory=CpuMeter)


async def _timed(workload: Workload, engine: Engine, timeout: float) -> Sample:
    gc.collect()
    async with asyncio.timeout(timeout):
        return await workload.run_once(engine, timeout)


async def measure(
    workload: Workload, engine: Engine, backend: str, context: Context
) -> WorkloadResult:
    """Warm-ups, then ``repeat`` timed runs of one workload on one engine."""
    options = context.options
    result = WorkloadResult(backend, workload.key, workload.title, workload.metrics())
    result.warmups = options.warmup
    timeout = RUN_TIMEOUT[workload.key] * options.timeout_scale
    runs: list[dict[str, Any]] = []
    try:
        await workload.prepare(engine)
        for _ in range(options.warmup):
            sample = await _timed(workload, engine, timeout)
            _say(f"  {backend} {workload.key} warm-up: {_brief(sample.values)}")
        before = context.meter.snapshot()
        for index in range(options.repeat):
            sample = await _timed(workload, engine, timeout)
            _say(f"  {backend} {workload.key} rep {index + 1}: {_brief(sample.values)}")
            for metric in result.metrics:
                if metric.name in sample.values:
                    metric.values.append(sample.values[metric.name])
            runs.append({**sample.raw, "values": sample.values})
        after = context.meter.snapshot()
        shares = context.meter.shares(before, after)
        if shares is not None:
            result.cpu = shares.as_dict()
        if backend == "real":
            seconds = cpu_seconds(before, after, context.meter.roles)
            result.cpu_per_node = cpu_per_node(seconds, workload.nodes * options.repeat)
    except TimeoutError:
        result.error = f"a run took longer than {timeout:.3g} s (timed out)"
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if result.error is not None:
            _say(f"  {backend} {workload.key}: ERROR {result.error}")
            await workload.abort(engine)
        await workload.finish(engine)
    result.raw = {"runs": runs}
    return result


# ----------------------------------------------------------------- backends
def memory_engine(*, node_events: bool = True) -> Engine:
    """The embedded engine: orchestrator and function pool in this process."""
    settings = Settings(worker_concurrency=CONCURRENCY, node_events=node_events)
    return Engine(settings=settings, registry=tasks.registry(), pools=["function"])


async def run_memory(context: Context) -> list[WorkloadResult]:
    """Each workload on a fresh embedded engine (no state left over from the others)."""
    options = context.options
    _say("memory backend: embedded Engine in this process")
    results = []
    for key in options.workloads:
        async with memory_engine() as engine:
            results.append(await measure(build(key, options.sizes), engine, "memory", context))
    if options.wants_events_off:
        async with memory_engine(node_events=False) as engine:
            quiet = await measure(build("w3", options.sizes), engine, "memory", context)
        results.append(events_off(quiet))
    return results


async def _real_workloads(
    deployment: Deployment,
    engine: Engine,
    context: Context,
    info: dict[str, Any],
    keys: Sequence[str],
) -> list[WorkloadResult]:
    """The workloads ``keys`` on the running deployment; RSS before and after each."""
    rss: dict[str, dict[str, int | None]] = {}
    info["rss_kib"] = rss
    for name, kib in deployment.rss().items():
        rss.setdefault(name, {})["start"] = kib
    results = []
    for key in keys:
        results.append(await measure(build(key, context.options.sizes), engine, "real", context))
        deployment.check_alive()
        for name, kib in deployment.rss().items():
            rss[name][f"after_{key}"] = kib
    for name, kib in deployment.rss().items():
        rss[name]["end"] = kib
    return results


async def run_real(context: Context, run: BenchRun, servers: Servers) -> list[WorkloadResult]:
    """Every workload on one deployment; then W3 on a second one with node events off."""
    deployment = Deployment(servers, concurrency=CONCURRENCY)
    _say(f"real backend: namespace {deployment.namespace}, logs in {deployment.logs}")
    run.deployment = _describe(deployment)
    results = await _deployed(deployment, context, run.deployment, context.options.workloads)
    if context.options.wants_events_off:
        quiet = Deployment(servers, concurrency=CONCURRENCY, extra_env=dict(NODE_EVENTS_OFF_ENV))
        _say(f"real backend, node events off: namespace {quiet.namespace}, logs in {quiet.logs}")
        info = run.deployment[EVENTS_OFF_DEPLOYMENT] = _describe(quiet)
        results += [events_off(result) for result in await _deployed(quiet, context, info, ("w3",))]
    return results


def _describe(deployment: Deployment) -> dict[str, Any]:
    return {"namespace": deployment.namespace, "logs": str(deployment.logs)}


async def _deployed(
    deployment: Deployment, context: Context, info: dict[str, Any], keys: Sequence[str]
) -> list[WorkloadResult]:
    """Start ``deployment``, run ``keys`` on it, then stop its processes and remove its
    namespace whatever happens (Ctrl-C included); its logs stay unless all went well."""
    results: list[WorkloadResult] = []
    ok = False
    try:
        deployment.start()
        info["pids"] = deployment.pids()
        context.meter.add(deployment.pids())
        _say(f"  processes: {deployment.pids()}")
        engine = deployment.client()
        try:
            await engine.open()
            info["ready_s"] = await deployment.wait_ready(engine)
            results = await _real_workloads(deployment, engine, context, info, keys)
            ok = True
        finally:
            await engine.close()
    except DeploymentError as exc:
        results.append(WorkloadResult("real", "all", "deployment", error=f"deployment: {exc}"))
    finally:
        deployment.stop()
        info["exit_codes"] = {n: p.returncode for n, p in deployment.processes.items()}
        logs = info["log_summary"] = deployment.log_summary()
        ok = ok and not any(entry["errors"] for entry in logs.values())
        problems = await deployment.cleanup()
        if problems:
            info["cleanup_problems"] = problems
            _say(f"  could not remove namespace {deployment.namespace} entirely: {problems}")
        if ok:
            deployment.remove_logs()
            info.pop("logs")
        else:
            _say(f"  kept the processes' logs in {deployment.logs}")
    return results


async def run_floor(context: Context, servers: Servers, run: BenchRun) -> FloorResult:
    sizes = QUICK_FLOOR if context.options.quick else FloorSizes()
    _say("floor: RabbitMQ and Redis raw round trips")
    prefix = f"bench-floor-{os.getpid()}"
    before = context.meter.snapshot()
    floor, versions = await measure_floor(servers.amqp_url, servers.redis_url, prefix, sizes)
    shares = context.meter.shares(before)
    if shares is not None:
        floor.cpu = shares.as_dict()
    run.machine.update(versions)
    return floor


async def run_all(options: Options) -> BenchRun:
    run = BenchRun(machine=machine_info(), options=_options_doc(options))
    busy = await cpu_busy(1.0)
    run.machine["cpu_busy_before"] = busy
    context = Context(options)
    servers = Servers.from_env()
    started = time.perf_counter()
    if "memory" in options.backends:
        run.results += await run_memory(context)
    if "real" in options.backends:
        run.floor = await run_floor(context, servers, run)
        run.results += await run_real(context, run, servers)
    run.ratios = compute_ratios(run.results, run.floor)
    run.machine["loadavg_end"] = list(os.getloadavg())
    if busy is not None and busy > BUSY_FRACTION:
        run.notes.append(
            f"other processes kept the cpus {busy:.0%} busy in the second before the run began"
        )
    run.notes.append(
        f"node events were on (W1 needs them) except where a title says otherwise; "
        f"worker concurrency {CONCURRENCY}; wall time {time.perf_counter() - started:.0f} s"
    )
    return run


def _options_doc(options: Options) -> dict[str, Any]:
    doc = asdict(options)
    doc["backends"] = list(options.backends)
    doc["workloads"] = list(options.workloads)
    return doc


def parse_choice(value: str, known: Sequence[str], both: str) -> tuple[str, ...]:
    if value == both:
        return tuple(known)
    if value not in known:
        raise ValueError(f"{value!r} is not one of {', '.join([*known, both])}")
    return (value,)
