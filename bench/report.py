"""Results of a benchmark run: statistics, the printed tables and the JSON document.

Everything here is pure (no clock, no I/O but :func:`write_json`), so the formatting is
tested without running anything.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


# ------------------------------------------------------------------ statistics
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is not within 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """Median and range of one metric over the measured repetitions."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("summary of no values")
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(slots=True)
class Metric:
    """One measured quantity: a value per repetition."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    better: str = "lower"
    """``lower`` or ``higher``: which way is better (for readers of the JSON)."""

    @property
    def summary(self) -> Summary | None:
        return Summary.of(self.values) if self.values else None


@dataclass(slots=True)
class WorkloadResult:
    """One workload on one backend: its metrics, or the error that stopped it."""

    backend: str
    workload: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    warmups: int = 0
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    """Per-repetition extras (W1's event-arrival deltas, W3's execution latencies)."""
    cpu: dict[str, float] | None = None
    """Shares of the machine's cpu capacity during the timed runs: ``busy``, ``ours``
    (bench + deployment), ``servers``, ``others`` (everything else: contention)."""
    cpu_per_node: dict[str, float] | None = None
    """Real backend: microseconds of cpu per node execution during the timed runs, per
    process role (:data:`CPU_ROLES`) and ``total``, and ``cap``: the node executions/s
    that :data:`CAP_CORES` cores could sustain at that cost (see :func:`cpu_per_node`)."""

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def median(self, name: str) -> float | None:
        metric = self.metric(name)
        summary = metric.summary if metric is not None else None
        return summary.median if summary is not None else None


@dataclass(slots=True)
class FloorResult:
    """The raw floor of this machine: what the servers and their clients can do."""

    metrics: list[Metric] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    cpu: dict[str, float] | None = None

    def median(self, name: str) -> float | None:
        metric = next((m for m in self.metrics if m.name == name), None)
        summary = metric.summary if metric is not None else None
        return summary.median if summary is not None else None


@dataclass(frozen=True, slots=True)
class Ratio:
    """SPANE's cost over the floor's cost for the same unit of work."""

    name: str
    value: float
    numerator: str
    denominator: str
    meaning: str


@dataclass(slots=True)
class BenchRun:
    """Everything one ``python -m bench`` produced."""

    machine: dict[str, Any]
    options: dict[str, Any]
    results: list[WorkloadResult] = field(default_factory=list)
    floor: FloorResult | None = None
    ratios: list[Ratio] = field(default_factory=list)
    deployment: dict[str, Any] = field(default_factory=dict)
    """Real backend: namespace, process ids, orchestrator/worker RSS at start and end;
    the node-events-off deployment's own under :data:`EVENTS_OFF_DEPLOYMENT`."""
    notes: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    """Lines printed before the notes (the peers' ratios, the W4/W5 table)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More of the JSON document (``peer_ratios``, ``plot``, ``peers``)."""


# ---------------------------------------------------------------------- ratios
W1_STEP = "per step, total/steps"
W1_EVENT_MEDIAN = "per step, event deltas p50"
W1_EVENT_P99 = "per step, event deltas p99"
W2_TOTAL = "total"
W3_EXECUTIONS = "executions/s"
W3_NODES = "node executions/s"
FLOOR_PIPELINED = "rabbitmq publish+consume, confirms pipelined"
FLOOR_HOP = "rabbitmq hop latency (ping-pong / 2)"
EVENTS_OFF_WORKLOAD = "w3-no-node-events"
"""W3 again with node-level lifecycle events turned off (what they cost)."""
EVENTS_OFF_TITLE = ", node events off"
"""Appended to W3's title for that row."""
EVENTS_OFF_DEPLOYMENT = "node_events_off"
"""Key in :attr:`BenchRun.deployment` of the second real deployment (node events off)."""


def _find(results: Sequence[WorkloadResult], backend: str, workload: str) -> WorkloadResult | None:
    return next(
        (r for r in results if r.backend == backend and r.workload == workload and not r.error),
        None,
    )


def compute_ratios(results: Sequence[WorkloadResult], floor: FloorResult | None) -> list[Ratio]:
    """SPANE's per-node cost on the real backend as a multiple of the floor."""
    ratios: list[Ratio] = []
    w3 = _find(results, "real", "w3")
    w1 = _find(results, "real", "w1")
    pipelined = floor.median(FLOOR_PIPELINED) if floor else None
    hop = floor.median(FLOOR_HOP) if floor else None
    nodes_per_s = w3.median(W3_NODES) if w3 else None
    if nodes_per_s and pipelined:
        ratios.append(
            Ratio(
                name="W3 node cost / pipelined message cost",
                value=pipelined / nodes_per_s,
                numerator=f"1 / real W3 node executions/s ({nodes_per_s:.0f}/s)",
                denominator=f"1 / pipelined confirmed msgs/s ({pipelined:.0f}/s)",
                meaning=(
                    "how many floor messages (persistent, confirmed, consumed) one node costs "
                    "in throughput; a node needs at least 2 (task + result), plus its "
                    "lifecycle events and state writes, so ~2-4 is at the floor"
                ),
            )
        )
    step_ms = None
    if w1 is not None:
        step_ms = w1.median(W1_EVENT_MEDIAN) or w1.median(W1_STEP)
    if step_ms and hop:
        ratios.append(
            Ratio(
                name="W1 step latency / hop latency",
                value=step_ms / hop,
                numerator=f"real W1 per-step latency, event deltas p50 ({step_ms:.2f} ms)",
                denominator=f"RabbitMQ ping-pong hop latency ({hop:.2f} ms)",
                meaning=(
                    "how many broker hops one sequential step takes; a step needs at least "
                    "2 (task to worker, result to orchestrator) plus its Redis round trips, "
                    "so ~2-3 is at the floor"
                ),
            )
        )
    ratios.extend(_engine_share(results))
    return ratios


def _engine_share(results: Sequence[WorkloadResult]) -> list[Ratio]:
    memory = _find(results, "memory", "w3")
    real = _find(results, "real", "w3")
    mem_rate = memory.median(W3_NODES) if memory else None
    real_rate = real.median(W3_NODES) if real else None
    if not (mem_rate and real_rate):
        return []
    return [
        Ratio(
            name="W3 engine share (memory / real node time)",
            value=real_rate / mem_rate,
            numerator=f"1 / memory W3 node executions/s ({mem_rate:.0f}/s)",
            denominator=f"1 / real W3 node executions/s ({real_rate:.0f}/s)",
            meaning=(
                "the part of a real node's time that SPANE's own code (decisions, "
                "validation, bookkeeping; no network, no serialisation) would take alone"
            ),
        )
    ]


# ------------------------------------------------------------- cpu per node
CPU_ROLES = ("orchestrator", "worker", "rabbitmq", "redis", "mongodb", "client")
"""The processes whose cpu time the real backend's report splits per node execution."""
CAP_CORES = 2
"""The cores of the "cap" column: node executions/s if the cpu were the only limit."""


def cpu_per_node(
    seconds: dict[str, float], nodes: int, cores: int = CAP_CORES
) -> dict[str, float] | None:
    """Microseconds of cpu per node execution for each of :data:`CPU_ROLES` (0 when a
    role spent none), their ``total``, and ``cap`` = ``cores`` * 1e6 / total."""
    if nodes <= 0:
        return None
    per_node = {role: seconds.get(role, 0.0) * 1e6 / nodes for role in CPU_ROLES}
    total = sum(per_node.values())
    if total <= 0:
        return None
    return {**per_node, "total": total, "cap": cores * 1e6 / total}


def cpu_per_node_table(results: Sequence[WorkloadResult]) -> str | None:
    """One row per workload that has :attr:`WorkloadResult.cpu_per_node`, or ``None``."""
    columns = (*CPU_ROLES, "total", "cap")
    rows = [
        [_labelled(r), *(f"{r.cpu_per_node[column]:,.0f}" for column in columns)]
        for r in results
        if r.cpu_per_node is not None
    ]
    if not rows:
        return None
    headers = ["cpu per node execution (µs)", *CPU_ROLES, "total", f"cap on {CAP_CORES} cores"]
    return format_table(headers, rows)


def _labelled(result: WorkloadResult) -> str:
    """The title, prefixed by the backend unless it is SPANE's real one (a peer's row)."""
    return result.title if result.backend == "real" else f"{result.backend}: {result.title}"


# --------------------------------------------------------------------- tables
def format_number(value: float) -> str:
    """About three significant digits, no exponent for everyday magnitudes."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned text: text columns left-aligned, numeric-looking ones right-aligned."""
    columns = len(headers)
    widths = [len(h) for h in headers]
    for row in rows:
        if len(row) != columns:
            raise ValueError(f"row {row!r} has {len(row)} cells, expected {columns}")
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(_looks_numeric(row[i]) for row in rows if row[i]) for i in range(columns)
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if is_num else cell.ljust(width)
            for cell, width, is_num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _looks_numeric(cell: str) -> bool:
    stripped = cell.replace(",", "").replace(".", "").replace("-", "").rstrip("x%")
    return stripped.isdigit()


def results_table(results: Sequence[WorkloadResult]) -> str:
    headers = ["backend", "workload", "metric", "unit", "median", "min-max", "n", "others' cpu"]
    rows: list[list[str]] = []
    for result in results:
        if result.error is not None:
            rows.append([result.backend, result.title, "ERROR", "", "", "", "", ""])
            rows.append(["", "", _shorten(result.error, 70), "", "", "", "", ""])
            continue
        for index, metric in enumerate(result.metrics):
            rows.append(_metric_row(result if index == 0 else None, metric))
    return format_table(headers, rows)


def _share(cpu: dict[str, float] | None, key: str = "others") -> str:
    return "" if cpu is None or key not in cpu else f"{cpu[key]:.0%}"


def _metric_row(result: WorkloadResult | None, metric: Metric) -> list[str]:
    summary = metric.summary
    first = [result.backend, result.title] if result is not None else ["", ""]
    last = _share(result.cpu) if result is not None else ""
    if summary is None:
        return [*first, metric.name, metric.unit, "-", "-", "0", last]
    return [
        *first,
        metric.name,
        metric.unit,
        format_number(summary.median),
        f"{format_number(summary.low)}-{format_number(summary.high)}",
        str(summary.count),
        last,
    ]


def floor_table(floor: FloorResult) -> str:
    headers = ["floor", "unit", "median", "min-max", "n"]
    rows = []
    for metric in floor.metrics:
        summary = metric.summary
        if summary is None:
            continue
        rows.append(
            [
                metric.name,
                metric.unit,
                format_number(summary.median),
                f"{format_number(summary.low)}-{format_number(summary.high)}",
                str(summary.count),
            ]
        )
    return format_table(headers, rows)


def ratios_table(ratios: Sequence[Ratio]) -> str:
    rows = [[ratio.name, f"{ratio.value:.2f}x", ratio.numerator] for ratio in ratios]
    return format_table(["ratio", "value", "SPANE (numerator)"], rows)


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render(run: BenchRun) -> str:
    """The whole human-readable report."""
    parts = [f"SPANE benchmark — {_machine_line(run.machine)}", "", results_table(run.results)]
    parts.append(
        "others' cpu: share of the machine's cpu capacity that processes other than this "
        "benchmark, its deployment and the servers used during the timed runs"
    )
    per_node = cpu_per_node_table(run.results)
    if per_node is not None:
        parts += ["", per_node]
        parts.append(
            f"cap on {CAP_CORES} cores: node executions/s if all these processes shared "
            f"{CAP_CORES} cores and cpu were the only limit ({CAP_CORES} x 1e6 / total µs)"
        )
    if run.floor is not None:
        parts += ["", floor_table(run.floor)]
        if run.floor.error:
            parts.append(f"floor error: {run.floor.error}")
        parts += [f"note: {note}" for note in run.floor.notes]
        if run.floor.cpu is not None:
            parts.append(f"note: others' cpu during the floor: {_share(run.floor.cpu)}")
    if run.ratios:
        parts += ["", ratios_table(run.ratios)]
        parts += [f"  {ratio.name}: {ratio.meaning}" for ratio in run.ratios]
    parts += deployment_lines(run.deployment)
    quiet = run.deployment.get(EVENTS_OFF_DEPLOYMENT)
    if quiet:
        parts += deployment_lines(quiet, " (node events off)")
    parts += run.sections
    parts += [f"note: {note}" for note in run.notes]
    return "\n".join(parts)


def deployment_lines(deployment: dict[str, Any], label: str = "") -> list[str]:
    """A real deployment's log problems and RSS; ``label`` follows each process name."""
    parts = log_lines(deployment.get("log_summary") or {}, label)
    rss = deployment.get("rss_kib")
    if rss:
        parts.append("")
        for process, values in rss.items():
            steps = ", ".join(f"{k.replace('_', ' ')} {_mib(v)}" for k, v in values.items())
            parts.append(f"{process}{label} RSS: {steps}")
    return parts


def log_lines(summary: dict[str, dict[str, Any]], label: str = "") -> list[str]:
    """What the deployment's processes logged that deserves attention."""
    lines = []
    for process, entry in summary.items():
        if not (entry.get("errors") or entry.get("warnings")):
            continue
        lines.append(
            f"{process}{label} log: {entry.get('errors', 0)} ERROR and "
            f"{entry.get('warnings', 0)} WARNING line(s)"
        )
        for exception, count in (entry.get("exceptions") or {}).items():
            lines.append(f"  {count} x {_shorten(exception, 110)}")
    return ["", *lines] if lines else []


def _mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.1f} MiB"


def _machine_line(machine: dict[str, Any]) -> str:
    keys = ("cpu_count", "python", "rabbitmq", "redis", "commit")
    labels = {
        "cpu_count": "cpus",
        "python": "python",
        "rabbitmq": "RabbitMQ",
        "redis": "Redis",
        "commit": "commit",
    }
    line = ", ".join(f"{labels[k]} {machine[k]}" for k in keys if machine.get(k))
    return line + (" (spane/ modified)" if machine.get("spane_dirty") else "")


# ----------------------------------------------------------------------- JSON
def to_document(run: BenchRun) -> dict[str, Any]:
    """The JSON document: every raw repetition value plus its summary."""

    def metric(m: Metric) -> dict[str, Any]:
        summary = m.summary
        return {**asdict(m), "summary": asdict(summary) if summary is not None else None}

    return {
        "machine": run.machine,
        "options": run.options,
        "results": [
            {
                "backend": r.backend,
                "workload": r.workload,
                "title": r.title,
                "warmups": r.warmups,
                "error": r.error,
                "cpu": r.cpu,
                "cpu_per_node_us": r.cpu_per_node,
                "metrics": [metric(m) for m in r.metrics],
                "raw": r.raw,
            }
            for r in run.results
        ],
        "floor": None
        if run.floor is None
        else {
            "error": run.floor.error,
            "notes": run.floor.notes,
            "cpu": run.floor.cpu,
            "metrics": [metric(m) for m in run.floor.metrics],
        },
        "ratios": [asdict(ratio) for ratio in run.ratios],
        "deployment": run.deployment,
        "notes": run.notes,
        **run.extra,
    }


def write_json(run: BenchRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_document(run), indent=2) + "\n")
