"""``python -m bench --soak MINUTES``: real W3 back to back, RSS sampled throughout.

The deployment is the real benchmark's (:class:`~bench.deploy.Deployment`: orchestrator
and function pool as separate processes on a private namespace, removed afterwards).
After the warm-up run(s) the soak takes its baseline RSS sample, then runs W3 until
MINUTES have passed (the last run started in time is finished). RSS is sampled every
``interval`` seconds and after every run; a process that exits or a run that fails stops
the soak.

The verdict per process is pure arithmetic over the samples taken after the warm-up:
*flat* when RSS at the end is less than :data:`GROWTH_LIMIT` above the start **and** the
least-squares slope is under :data:`SLOPE_LIMIT` MiB per minute; *growing* otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.deploy import Deployment, DeploymentError, Servers
from bench.machine import CpuMeter, machine_info
from bench.report import W3_NODES, Summary, format_number, format_table, log_lines
from bench.suite import CONCURRENCY, RUN_TIMEOUT
from bench.workloads import Sample, Sizes, Workload, build
from spane import Engine

GROWTH_LIMIT = 0.05
"""End RSS may be at most this fraction above the start RSS for *flat*."""
SLOPE_LIMIT = 0.5
"""MiB per minute: the least-squares slope of RSS must stay under this for *flat*."""
DEFAULT_INTERVAL = 10.0


class Phase(StrEnum):
    """When an RSS sample was taken."""

    WARMUP = "warm-up"  # by the timer during the warm-up run(s): not judged
    START = "start"  # right after the warm-up: the baseline
    INTERVAL = "interval"  # by the timer during the soak
    RUN = "run"  # right after a soak run; the last one is the end figure


class Verdict(StrEnum):
    """What the samples say about one process's memory."""

    FLAT = "flat"  # growth and slope under their limits
    GROWING = "growing"  # either at or over its limit
    UNKNOWN = "unknown"  # fewer than two samples after the warm-up


@dataclass(frozen=True, slots=True)
class SoakOptions:
    minutes: float
    """How long to run W3 back to back after the warm-up."""
    interval: float = DEFAULT_INTERVAL
    """Seconds between timer samples of RSS (runs add one sample each)."""
    warmup: int = 1
    sizes: Sizes = field(default_factory=Sizes)
    timeout_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.interval <= 0:
            raise ValueError("--soak and --soak-interval must be greater than 0")
        if self.warmup < 0:
            raise ValueError("--warmup must be at least 0")


@dataclass(frozen=True, slots=True)
class RssSample:
    t_s: float
    """Seconds since the deployment was ready."""
    at: float
    """Wall clock (Unix time)."""
    phase: Phase
    rss_kib: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class SoakRun:
    """One measured W3 run."""

    index: int
    t_s: float
    """When it started, seconds since the deployment was ready."""
    values: dict[str, float]
    raw: dict[str, Any]


@dataclass(slots=True)
class SoakResult:
    """Everything one soak produced, the error that stopped it included."""

    options: SoakOptions
    title: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    runs: list[SoakRun] = field(default_factory=list)
    samples: list[RssSample] = field(default_factory=list)
    error: str | None = None
    cpu: dict[str, float] | None = None
    deployment: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


# ------------------------------------------------------------- pure figures
def slope_mib_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, KiB)`` points in MiB per minute; ``None``
    without two distinct times."""
    if len({t for t, _ in points}) < 2:
        return None
    slope, _ = statistics.linear_regression([t for t, _ in points], [v for _, v in points])
    return slope * 60 / 1024


@dataclass(frozen=True, slots=True)
class MemoryTrend:
    """One process's RSS over the samples after the warm-up."""

    process: str
    start_kib: int
    end_kib: int
    max_kib: int
    slope: float | None
    """MiB per minute (least squares)."""
    samples: int

    @property
    def growth(self) -> float:
        """End over start, minus one."""
        return self.end_kib / self.start_kib - 1 if self.start_kib else 0.0

    @property
    def verdict(self) -> Verdict:
        if self.slope is None:
            return Verdict.UNKNOWN
        if self.growth < GROWTH_LIMIT and self.slope < SLOPE_LIMIT:
            return Verdict.FLAT
        return Verdict.GROWING


def memory_trend(process: str, samples: Sequence[RssSample]) -> MemoryTrend | None:
    """The trend of ``process`` from the start sample on (``None`` before any)."""
    judged = [s for s in samples if s.phase is not Phase.WARMUP]
    points = [(s.t_s, kib) for s in judged if (kib := s.rss_kib.get(process)) is not None]
    if not points:
        return None
    points.sort()
    values = [int(kib) for _, kib in points]
    slope = slope_mib_per_min([(t, float(kib)) for t, kib in points])
    return MemoryTrend(process, values[0], values[-1], max(values), slope, len(points))


def memory_trends(result: SoakResult) -> list[MemoryTrend]:
    processes = dict.fromkeys(name for s in result.samples for name in s.rss_kib)
    trends = (memory_trend(name, result.samples) for name in processes)
    return [trend for trend in trends if trend is not None]


def rate_summary(result: SoakResult) -> Summary | None:
    rates = [run.values[W3_NODES] for run in result.runs if W3_NODES in run.values]
    return Summary.of(rates) if rates else None


# ---------------------------------------------------------------- rendering
def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def _signed(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}"


def verdict_line(trend: MemoryTrend) -> str:
    slope = "n/a" if trend.slope is None else f"{_signed(trend.slope)} MiB/min"
    figures = (
        f"{_mib(trend.start_kib)} -> {_mib(trend.end_kib)} MiB ({trend.growth:+.1%}), "
        f"slope {slope} over {trend.samples} samples"
    )
    return f"verdict {trend.process}: {trend.verdict} ({figures})"


def render_soak(result: SoakResult) -> str:
    """The human-readable soak report."""
    options = result.options
    parts = [
        f"SPANE soak — {result.title} back to back for {options.minutes:g} min on the real "
        f"backend (RSS every {options.interval:g} s and after each run)",
        "",
        f"runs completed: {len(result.runs)} (after {options.warmup} warm-up run(s)); "
        f"samples: {len(result.samples)}; wall time {result.wall_s:.0f} s"
        + ("; STOPPED EARLY by the error below" if result.error is not None else ""),
    ]
    rates = rate_summary(result)
    if rates is not None:
        parts += [
            "",
            format_table(
                ["metric", "median", "min", "max", "n"],
                [
                    [
                        f"W3 {W3_NODES}",
                        format_number(rates.median),
                        format_number(rates.low),
                        format_number(rates.high),
                        str(rates.count),
                    ]
                ],
            ),
        ]
    trends = memory_trends(result)
    if trends:
        parts += ["", _trend_table(trends)]
        parts += [verdict_line(trend) for trend in trends]
        parts.append(
            f"flat means end RSS < {GROWTH_LIMIT:.0%} above start and slope "
            f"< {SLOPE_LIMIT} MiB/min (samples after the warm-up)"
        )
    if result.cpu is not None and "others" in result.cpu:
        parts.append(f"others' cpu during the soak: {result.cpu['others']:.0%}")
    parts += log_lines(result.deployment.get("log_summary") or {})
    if result.error is not None:
        parts += ["", f"ERROR: {result.error}"]
    return "\n".join(parts)


def _trend_table(trends: Sequence[MemoryTrend]) -> str:
    headers = ["process RSS", "start MiB", "end MiB", "max MiB", "growth", "MiB/min", "verdict"]
    rows = [
        [
            trend.process,
            _mib(trend.start_kib),
            _mib(trend.end_kib),
            _mib(trend.max_kib),
            f"{trend.growth:+.1%}",
            "-" if trend.slope is None else _signed(trend.slope),
            str(trend.verdict),
        ]
        for trend in trends
    ]
    return format_table(headers, rows)


# --------------------------------------------------------------------- JSON
def soak_document(result: SoakResult) -> dict[str, Any]:
    """Every sample and run, plus the figures the table shows."""
    rates = rate_summary(result)
    trends = memory_trends(result)
    return {
        "title": result.title,
        "options": asdict(result.options),
        "machine": result.machine,
        "error": result.error,
        "wall_s": result.wall_s,
        "cpu": result.cpu,
        "limits": {"growth": GROWTH_LIMIT, "slope_mib_per_min": SLOPE_LIMIT},
        "node_executions_per_s": asdict(rates) if rates is not None else None,
        "memory": [
            {**asdict(trend), "growth": trend.growth, "verdict": str(trend.verdict)}
            for trend in trends
        ],
        "runs": [asdict(run) for run in result.runs],
        "samples": [{**asdict(s), "phase": str(s.phase)} for s in result.samples],
        "deployment": result.deployment,
    }


def write_soak_json(result: SoakResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(soak_document(result), indent=2) + "\n")


# ------------------------------------------------------------------ running
def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Sampler:
    """Takes the RSS samples; its timer also notices a process that exited."""

    def __init__(self, deployment: Deployment, samples: list[RssSample]) -> None:
        self.deployment = deployment
        self.samples = samples
        self.began = time.monotonic()
        self.phase = Phase.WARMUP

    def now(self) -> float:
        return time.monotonic() - self.began

    def take(self, phase: Phase) -> RssSample:
        sample = RssSample(self.now(), time.time(), phase, self.deployment.rss())
        self.samples.append(sample)
        return sample

    async def every(self, interval: float) -> None:
        """Sample every ``interval`` seconds until cancelled; raises
        :class:`DeploymentError` when a process has exited."""
        due = time.monotonic()
        while True:
            due += interval
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
            self.deployment.check_alive()
            self.take(self.phase)


async def _watched(
    workload: Workload, engine: Engine, timeout: float, timer: asyncio.Task[None]
) -> Sample:
    """One run, bounded by ``timeout``, stopped early when the timer task fails."""

    async def timed() -> Sample:
        async with asyncio.timeout(timeout):
            return await workload.run_once(engine, timeout)

    run = asyncio.ensure_future(timed())
    try:
        await asyncio.wait({run, timer}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            timer.result()  # raises what stopped the timer
            raise DeploymentError("the RSS sampler stopped")
        return run.result()
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(BaseException):
                await run


def _progress(label: str, sample: Sample | None, rss: RssSample) -> None:
    rate = f"{W3_NODES} {sample.values[W3_NODES]:.0f}; " if sample is not None else ""
    memory = ", ".join(
        f"{name} {'?' if kib is None else _mib(kib)} MiB" for name, kib in rss.rss_kib.items()
    )
    _say(f"  {label} ({rss.t_s:.0f} s): {rate}RSS {memory}")


async def _loop(workload: Workload, engine: Engine, sampler: _Sampler, result: SoakResult) -> None:
    """Warm-up, baseline sample, then runs until the time is up."""
    options = result.options
    timeout = RUN_TIMEOUT["w3"] * options.timeout_scale
    timer = asyncio.create_task(sampler.every(options.interval))
    meter = CpuMeter()
    meter.add(sampler.deployment.pids())
    try:
        await workload.prepare(engine)
        for index in range(options.warmup):
            sample = await _watched(workload, engine, timeout, timer)
            _say(f"  warm-up {index + 1}: {W3_NODES} {sample.values[W3_NODES]:.0f}")
        sampler.phase = Phase.INTERVAL
        _progress("start", None, sampler.take(Phase.START))
        before = meter.snapshot()
        deadline = time.monotonic() + options.minutes * 60
        while time.monotonic() < deadline:
            started = sampler.now()
            sample = await _watched(workload, engine, timeout, timer)
            sampler.deployment.check_alive()
            index = len(result.runs) + 1
            result.runs.append(SoakRun(index, started, sample.values, sample.raw))
            _progress(f"run {index}", sample, sampler.take(Phase.RUN))
        shares = meter.shares(before)
        result.cpu = shares.as_dict() if shares is not None else None
    finally:
        timer.cancel()
        with contextlib.suppress(BaseException):
            await timer


async def _soak(deployment: Deployment, engine: Engine, result: SoakResult) -> None:
    """The runs on a ready deployment; a failure becomes ``result.error``."""
    workload = build("w3", result.options.sizes)
    result.title = workload.title
    sampler = _Sampler(deployment, result.samples)
    try:
        await _loop(workload, engine, sampler, result)
    except TimeoutError:
        result.error = f"run {len(result.runs) + 1} timed out"
    except Exception as exc:
        result.error = f"run {len(result.runs) + 1}: {type(exc).__name__}: {exc}"
    finally:
        if result.error is not None:
            _say(f"  ERROR {result.error}")
            await workload.abort(engine)
        await workload.finish(engine)


async def _teardown(deployment: Deployment, info: dict[str, Any], ok: bool) -> None:
    """Stop the processes, remove the namespace; keep the logs unless all went well."""
    deployment.stop()
    info["exit_codes"] = {n: p.returncode for n, p in deployment.processes.items()}
    info["log_summary"] = logs = deployment.log_summary()
    problems = await deployment.cleanup()
    if problems:
        info["cleanup_problems"] = problems
        _say(f"  could not remove namespace {deployment.namespace} entirely: {problems}")
    if ok and not any(entry["errors"] for entry in logs.values()):
        deployment.remove_logs()
        info.pop("logs")
    else:
        _say(f"  kept the processes' logs in {deployment.logs}")


async def run_soak(options: SoakOptions, servers: Servers | None = None) -> SoakResult:
    """Deploy, soak, tear down (whatever happens, Ctrl-C included)."""
    result = SoakResult(options, machine=machine_info())
    deployment = Deployment(servers or Servers.from_env(), concurrency=CONCURRENCY)
    _say(f"soak: namespace {deployment.namespace}, logs in {deployment.logs}")
    info = result.deployment = {"namespace": deployment.namespace, "logs": str(deployment.logs)}
    began = time.perf_counter()
    ok = False
    try:
        deployment.start()
        info["pids"] = deployment.pids()
        _say(f"  processes: {deployment.pids()}")
        engine = deployment.client()
        try:
            await engine.open()
            info["ready_s"] = await deployment.wait_ready(engine)
            await _soak(deployment, engine, result)
            ok = result.error is None
        finally:
            await engine.close()
    except DeploymentError as exc:
        result.error = f"deployment: {exc}"
    finally:
        await _teardown(deployment, info, ok)
        result.wall_s = time.perf_counter() - began
    return result
