"""Running the workloads: warm-ups, repetitions, timeouts, and both backends.

Every run is bounded by a timeout; a run that fails or times out turns its workload into
an error row (what is still in flight is cancelled) and the suite moves on. The real
backend's processes are stopped and its namespace deleted whatever happens, Ctrl-C
included.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import tasks
from bench.deploy import ROOT, Deployment, DeploymentError, Servers
from bench.floor import QUICK_FLOOR, FloorSizes, measure_floor
from bench.report import BenchRun, FloorResult, WorkloadResult, compute_ratios
from bench.workloads import Sizes, Workload, build
from spane import Engine
from spane.config import Settings

log = logging.getLogger("bench")

BACKENDS = ("memory", "real")
CONCURRENCY = 64
BUSY_FRACTION = 0.2
"""Share of the machine's cpu time used by others before the run that earns a warning."""
RUN_TIMEOUT = {"w1": 120.0, "w2": 120.0, "w3": 180.0}
"""Seconds one run of each workload may take before it is an error."""


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
    """Also measure memory W3 with node-level events turned off (their cost)."""


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "executable": sys.executable,
        "loadavg_start": list(os.getloadavg()),
        **source_info(),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def source_info() -> dict[str, Any]:
    """The commit measured, and whether ``spane/`` had uncommitted changes."""
    changed = _git("status", "--porcelain", "--", "spane")
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "spane_dirty": None if changed is None else bool(changed),
    }


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cpus since boot, from ``/proc/stat`` (Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def cpu_busy(interval: float) -> float | None:
    """The share of all cpus' time spent busy over the next ``interval`` seconds."""
    first = _cpu_times()
    await asyncio.sleep(interval)
    second = _cpu_times()
    if first is None or second is None or second[1] == first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1])


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------- one workload
async def measure(
    workload: Workload, engine: Engine, backend: str, options: Options
) -> WorkloadResult:
    """Warm-ups, then ``repeat`` timed runs of one workload on one engine."""
    result = WorkloadResult(backend, workload.key, workload.title, workload.metrics())
    result.warmups = options.warmup
    timeout = RUN_TIMEOUT[workload.key] * options.timeout_scale
    runs: list[dict[str, Any]] = []
    try:
        await workload.prepare(engine)
        for index in range(options.warmup + options.repeat):
            warm = index < options.warmup
            gc.collect()
            async with asyncio.timeout(timeout):
                sample = await workload.run_once(engine, timeout)
            label = "warm-up" if warm else f"rep {index - options.warmup + 1}"
            _say(f"  {backend} {workload.key} {label}: {_brief(sample.values)}")
            if warm:
                continue
            for metric in result.metrics:
                if metric.name in sample.values:
                    metric.values.append(sample.values[metric.name])
            runs.append({**sample.raw, "values": sample.values})
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


def _brief(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3g}" for name, value in values.items())


async def run_workloads(engine: Engine, backend: str, options: Options) -> list[WorkloadResult]:
    results = []
    for key in options.workloads:
        results.append(await measure(build(key, options.sizes), engine, backend, options))
    return results


# ----------------------------------------------------------------- backends
def memory_engine(*, node_events: bool = True) -> Engine:
    """The embedded engine: orchestrator and function pool in this process."""
    settings = Settings(worker_concurrency=CONCURRENCY, node_events=node_events)
    return Engine(settings=settings, registry=tasks.registry(), pools=["function"])


async def run_memory(options: Options) -> list[WorkloadResult]:
    """Each workload on a fresh embedded engine (no state left over from the others)."""
    _say("memory backend: embedded Engine in this process")
    results = []
    for key in options.workloads:
        async with memory_engine() as engine:
            results.append(await measure(build(key, options.sizes), engine, "memory", options))
    if options.events_off and "w3" in options.workloads:
        async with memory_engine(node_events=False) as engine:
            quiet = await measure(build("w3", options.sizes), engine, "memory", options)
        quiet.workload = "w3-no-node-events"
        quiet.title += ", node events off"
        results.append(quiet)
    return results


async def run_real(options: Options, run: BenchRun, servers: Servers) -> list[WorkloadResult]:
    deployment = Deployment(servers, concurrency=CONCURRENCY)
    _say(f"real backend: namespace {deployment.namespace}, logs in {deployment.logs}")
    info: dict[str, Any] = {"namespace": deployment.namespace, "logs": str(deployment.logs)}
    run.deployment = info
    results: list[WorkloadResult] = []
    ok = False
    try:
        deployment.start()
        info["pids"] = deployment.pids()
        _say(f"  processes: {deployment.pids()}")
        engine = deployment.client()
        try:
            await engine.open()
            info["ready_s"] = await deployment.wait_ready(engine)
            start_rss = deployment.rss()
            results = await run_workloads(engine, "real", options)
            deployment.check_alive()
            end_rss = deployment.rss()
            info["rss_kib"] = {
                name: {"start": start_rss.get(name), "end": end_rss.get(name)}
                for name in deployment.processes
            }
            ok = True
        finally:
            await engine.close()
    except DeploymentError as exc:
        results.append(_failed("real", f"deployment: {exc}"))
    finally:
        deployment.stop()
        info["exit_codes"] = {n: p.returncode for n, p in deployment.processes.items()}
        await deployment.cleanup()
        if ok:
            deployment.remove_logs()
            info.pop("logs")
        else:
            _say(f"  kept the processes' logs in {deployment.logs}")
    return results


def _failed(backend: str, error: str) -> WorkloadResult:
    return WorkloadResult(backend, "all", "deployment", error=error)


async def run_floor(options: Options, servers: Servers, run: BenchRun) -> FloorResult:
    sizes = QUICK_FLOOR if options.quick else FloorSizes()
    _say("floor: RabbitMQ and Redis raw round trips")
    prefix = f"bench-floor-{os.getpid()}"
    floor, versions = await measure_floor(servers.amqp_url, servers.redis_url, prefix, sizes)
    run.machine.update(versions)
    return floor


async def run_all(options: Options) -> BenchRun:
    run = BenchRun(machine=machine_info(), options=_options_doc(options))
    run.machine["cpu_busy_before"] = await cpu_busy(1.0)
    servers = Servers.from_env()
    started = time.perf_counter()
    if "memory" in options.backends:
        run.results += await run_memory(options)
    if "real" in options.backends:
        run.floor = await run_floor(options, servers, run)
        run.results += await run_real(options, run, servers)
    run.ratios = compute_ratios(run.results, run.floor)
    run.machine["loadavg_end"] = list(os.getloadavg())
    busy = run.machine.get("cpu_busy_before")
    if busy is not None and busy > BUSY_FRACTION:
        run.notes.append(
            f"other processes kept the cpus {busy:.0%} busy in the second before the run "
            "began: they competed with the benchmark, so these figures are pessimistic"
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
