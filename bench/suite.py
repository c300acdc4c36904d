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
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bench import tasks
from bench.deploy import Deployment, DeploymentError, Servers, archive_settled
from bench.floor import QUICK_FLOOR, FloorSizes, measure_floor
from bench.machine import CLIENT, CpuMeter, cpu_busy, cpu_seconds, machine_info
from bench.peers import peer_ratios, peer_ratios_table, ratio_document
from bench.report import (
    EVENTS_OFF_DEPLOYMENT,
    EVENTS_OFF_TITLE,
    EVENTS_OFF_WORKLOAD,
    BenchRun,
    FloorResult,
    Metric,
    WorkloadResult,
    compute_ratios,
    cpu_per_node,
    format_number,
)
from bench.scale import Loop, ScaleSizes, Size, scale_table, value_bytes_for, write_plot
from bench.workloads import WORKLOADS, Sample, Sizes, Workload
from bench.workloads import build as build_standard
from spane import Engine
from spane.config import Settings
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES

BACKENDS = ("memory", "real")
ALL_WORKLOADS = (*WORKLOADS, "w4", "w5")
STANDARD = WORKLOADS
"""``--workload all``: W1-W3, the standard set; ``scale`` is W4 and W5."""
CONCURRENCY = 64
RUN_TIMEOUT = {"w1": 120.0, "w2": 120.0, "w3": 180.0, "w4": 900.0, "w5": 1800.0}
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
    scale: ScaleSizes = field(default_factory=ScaleSizes)
    peers: tuple[str, ...] = ()
    """Other engines measured in the same run (``celery``)."""
    plot: Path | None = None
    """Where to write the W4/W5 plot (when they ran)."""

    @property
    def wants_events_off(self) -> bool:
        return self.events_off and "w3" in self.workloads

    @property
    def max_value_bytes(self) -> int | None:
        """W5 needs more than the default 1 MiB per value; None: the default."""
        return value_bytes_for(max(self.scale.w5)) if "w5" in self.workloads else None


def build(key: str, options: Options) -> Workload:
    """Workload ``key`` (W1-W5) at the options' sizes."""
    if key == "w4":
        return Size(options.scale.w4, options.scale.repeat)
    if key == "w5":
        return Loop(options.scale.w5, options.scale.repeat, options.scale.w5_concurrency)
    return build_standard(key, options.sizes)


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


E = TypeVar("E", contravariant=True)


class Measurable(Protocol[E]):
    """A workload on some engine (SPANE's :class:`Workload`, a peer's)."""

    key: str
    repeat: int | None

    @property
    def title(self) -> str: ...
    @property
    def nodes(self) -> int: ...
    def metrics(self) -> list[Metric]: ...
    async def prepare(self, engine: E) -> None: ...
    async def warm_once(self, engine: E, timeout: float) -> Sample: ...
    async def run_once(self, engine: E, timeout: float) -> Sample: ...
    async def abort(self, engine: E) -> None: ...
    async def finish(self, engine: E) -> None: ...


def _collect() -> float:
    """Collect earlier runs' garbage (not inside the next run's timing); the cpu seconds
    it took this process."""
    began = time.process_time()
    gc.collect()
    return time.process_time() - began


def _less_collects(seconds: dict[str, float], collecting: float) -> dict[str, float]:
    """Cpu seconds per role with the client's collects between runs taken off."""
    if CLIENT not in seconds:
        return seconds
    return {**seconds, CLIENT: max(seconds[CLIENT] - collecting, 0.0)}


async def _timed(sample: Any, timeout: float) -> Sample:
    async with asyncio.timeout(timeout):
        result: Sample = await sample
        return result


SETTLE_NOTE = 0.5
"""Seconds of waiting for the archive before a workload worth a line in the output."""

PER_NODE_BACKENDS = ("real", "celery")
"""Backends whose processes the cpu meter knows by role (cpu per node execution)."""


async def measure(
    workload: Measurable[E], engine: E, backend: str, context: Context
) -> WorkloadResult:
    """Warm-ups, then ``repeat`` timed runs of one workload on one engine."""
    options = context.options
    result = WorkloadResult(backend, workload.key, workload.title, workload.metrics())
    result.warmups = options.warmup
    timeout = RUN_TIMEOUT[workload.key] * options.timeout_scale
    repeat = workload.repeat or options.repeat
    runs: list[dict[str, Any]] = []
    try:
        await workload.prepare(engine)
        for _ in range(options.warmup):
            _collect()
            sample = await _timed(workload.warm_once(engine, timeout), timeout)
            _say(f"  {backend} {workload.key} warm-up: {_brief(sample.values)}")
        # The collects between timed runs are outside their timing but inside the cpu
        # window (a full collect of the client's heap took ~70 ms): their cpu is taken
        # off the client's, which counted it as cost of the workload.
        collecting = 0.0
        before = context.meter.snapshot()
        for index in range(repeat):
            collecting += _collect()
            sample = await _timed(workload.run_once(engine, timeout), timeout)
            _say(f"  {backend} {workload.key} rep {index + 1}: {_brief(sample.values)}")
            for metric in result.metrics:
                if metric.name in sample.values:
                    metric.values.append(sample.values[metric.name])
            runs.append({**sample.raw, "values": sample.values})
        after = context.meter.snapshot()
        shares = context.meter.shares(before, after)
        if shares is not None:
            result.cpu = shares.as_dict()
        if backend in PER_NODE_BACKENDS:
            seconds = _less_collects(cpu_seconds(before, after, context.meter.roles), collecting)
            result.cpu_per_node = cpu_per_node(seconds, workload.nodes * repeat)
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
def memory_engine(*, node_events: bool = True, max_value_bytes: int | None = None) -> Engine:
    """The embedded engine: orchestrator and function pool in this process."""
    settings = Settings(
        worker_concurrency=CONCURRENCY,
        node_events=node_events,
        max_value_bytes=max_value_bytes or DEFAULT_MAX_VALUE_BYTES,
    )
    return Engine(settings=settings, registry=tasks.registry(), pools=["function"])


async def run_memory(context: Context) -> list[WorkloadResult]:
    """Each workload on a fresh embedded engine (no state left over from the others)."""
    options = context.options
    _say("memory backend: embedded Engine in this process")
    results = []
    for key in options.workloads:
        async with memory_engine(max_value_bytes=options.max_value_bytes) as engine:
            results.append(await measure(build(key, options), engine, "memory", context))
    if options.wants_events_off:
        async with memory_engine(node_events=False) as engine:
            quiet = await measure(build("w3", options), engine, "memory", context)
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
        waited = await archive_settled(engine)
        if waited >= SETTLE_NOTE:
            _say(f"  real {key}: waited {waited:.1f} s for the archive to catch up first")
        results.append(await measure(build(key, context.options), engine, "real", context))
        deployment.check_alive()
        for name, kib in deployment.rss().items():
            rss[name][f"after_{key}"] = kib
    for name, kib in deployment.rss().items():
        rss[name]["end"] = kib
    return results


async def run_real(context: Context, run: BenchRun, servers: Servers) -> list[WorkloadResult]:
    """Every workload on one deployment; then W3 on a second one with node events off."""
    limit = context.options.max_value_bytes
    deployment = Deployment(servers, concurrency=CONCURRENCY, max_value_bytes=limit)
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
    if "celery" in options.peers:
        from bench.celery_run import run_celery  # imports this module

        run.results += await run_celery(context, run, servers)
    run.ratios = compute_ratios(run.results, run.floor)
    _present(run, options)
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


def _present(run: BenchRun, options: Options) -> None:
    """The peers' ratios, the W4/W5 table and plot, as sections of the report."""
    for peer in options.peers:
        ratios = peer_ratios(run.results, peer)
        run.extra.setdefault("peer_ratios", []).extend(ratio_document(r) for r in ratios)
        if ratios:
            run.sections += ["", peer_ratios_table(ratios, format_number), PEER_NOTE]
    table = scale_table(run.results)
    if table is None:
        return
    run.sections += ["", table, SCALE_NOTE]
    if options.plot is not None:
        written = write_plot(run.results, options.plot)
        run.extra["plot"] = written
        run.sections.append(f"plot: {written or 'not written (matplotlib is not installed)'}")


PEER_NOTE = (
    "SPANE / peer: W1 time per step, W2 total time (below 1: SPANE faster), W3 node "
    "executions/s (above 1: SPANE faster); same servers, same run, same concurrency"
)
SCALE_NOTE = (
    "x smallest size: cost per node (item) over the same at the smallest size; 1.00x = flat"
)


def _options_doc(options: Options) -> dict[str, Any]:
    doc = asdict(options)
    doc["backends"] = list(options.backends)
    doc["workloads"] = list(options.workloads)
    doc["peers"] = list(options.peers)
    doc["plot"] = None if options.plot is None else str(options.plot)
    return doc


WORKLOAD_SETS = {"all": STANDARD, "scale": ("w4", "w5"), "every": ALL_WORKLOADS}
"""Names ``--workload`` accepts besides ``w1``..``w5`` (comma-separated)."""


def parse_workloads(value: str) -> tuple[str, ...]:
    """``w1,w3`` / ``all`` (W1-W3) / ``scale`` (W4, W5) / ``every``, in W1..W5 order."""
    chosen: set[str] = set()
    for part in filter(None, (p.strip().lower() for p in value.split(","))):
        if part in WORKLOAD_SETS:
            chosen.update(WORKLOAD_SETS[part])
        elif part in ALL_WORKLOADS:
            chosen.add(part)
        else:
            known = ", ".join([*ALL_WORKLOADS, *WORKLOAD_SETS])
            raise ValueError(f"{part!r} is not a workload; use {known} (comma-separated)")
    if not chosen:
        raise ValueError("no workload chosen")
    return tuple(key for key in ALL_WORKLOADS if key in chosen)


def parse_choice(value: str, known: Sequence[str], both: str) -> tuple[str, ...]:
    if value == both:
        return tuple(known)
    if value not in known:
        raise ValueError(f"{value!r} is not one of {', '.join([*known, both])}")
    return (value,)
