"""W4 size and W5 loop (DESIGN §9): does the cost per node / per item stay flat?

- W4: one execution of a ``n``-node chain and one of a 1 -> ``n`` -> 1 fan-out for each
  ``n`` of :attr:`ScaleSizes.w4` (default 10, 50, 100, 2,000): the run's time over its
  nodes (the chain's ``n``, the fan's ``n + 2``).
- W5: one execution of a ``for_each`` over ``n`` items for each ``n`` of
  :attr:`ScaleSizes.w5` (default 100, 300, 10,000), concurrency
  :attr:`ScaleSizes.w5_concurrency` (50); each item ~100 bytes of JSON, the body one
  ``bench.pad`` task returning ~200 bytes; the run's time over ``n``.

Each repetition runs every size once (warm-ups run the smallest size only) and also
records largest / smallest per-node (per-item) cost, which is 1.0 when the cost is flat.
W5's values exceed SPANE's default ``max_value_bytes`` (1 MiB: 10,000 items are ~1 MB of
input and ~2 MB of output), so the engine that runs it is given
:func:`value_bytes_for` its largest size. :func:`scale_table` and :func:`write_plot`
present the figures.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import Metric, WorkloadResult, format_number, format_table
from bench.tasks import PAD
from bench.workloads import Sample, Workload, _check, chain_workflow, fan_workflow
from spane import Engine
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES

ITEM_PAD = 84
"""Characters of padding per W5 item: ``{"i": 1234, "p": "ppp..."}`` is ~100 bytes."""
PER = re.compile(r"^(?P<series>.+) per (?P<unit>node|item) @(?P<size>\d+)$")
"""Metric names ``<series> per node @<n>`` (W4) and ``<series> per item @<n>`` (W5)."""


@dataclass(frozen=True, slots=True)
class ScaleSizes:
    w4: tuple[int, ...] = (10, 50, 100, 2000)
    w5: tuple[int, ...] = (100, 300, 10_000)
    w5_concurrency: int = 50
    repeat: int = 1
    """Repetitions of W4 and W5 (each runs every size once)."""


QUICK_SCALE = ScaleSizes(w4=(10, 50, 100, 500), w5=(100, 300, 1000))


def value_bytes_for(items: int) -> int:
    """A ``max_value_bytes`` that fits a W5 loop of ``items`` (input and output)."""
    return max(DEFAULT_MAX_VALUE_BYTES, 512 * items)


def loop_workflow(workflow_id: str, concurrency: int) -> dict[str, Any]:
    """``for_each`` over ``input.items``; body: one ``bench.pad`` task per item."""
    return {
        "id": workflow_id,
        "nodes": [
            {
                "id": "loop",
                "type": "for_each",
                "items": "${ input.items }",
                "concurrency": concurrency,
                "body": {"nodes": [{"id": "pad", "function": PAD}]},
            }
        ],
    }


def loop_items(count: int) -> list[dict[str, Any]]:
    return [{"i": index, "p": "p" * ITEM_PAD} for index in range(count)]


class _Scaled(Workload):
    """Every size once per repetition; ``largest/smallest`` of each series."""

    unit = "node"
    series: tuple[str, ...] = ()

    def __init__(self, sizes: Sequence[int], repeat: int) -> None:
        super().__init__()
        if not sizes or min(sizes) < 1:
            raise ValueError("scale sizes must be at least 1")
        self.sizes = tuple(sorted(set(sizes)))
        self.repeat = repeat

    def workflow(self) -> dict[str, Any]:  # several workflows: see prepare()
        raise NotImplementedError

    def metrics(self) -> list[Metric]:
        names = [f"{s} per {self.unit} @{n}" for s in self.series for n in self.sizes]
        ratios = [f"{s} largest/smallest" for s in self.series]
        return [Metric(name, "ms") for name in names] + [Metric(name, "x") for name in ratios]

    async def _one(self, engine: Engine, series: str, size: int, timeout: float) -> float:
        """Run one execution; returns the milliseconds per node (item)."""
        raise NotImplementedError

    async def _sizes(self, engine: Engine, sizes: Sequence[int], timeout: float) -> Sample:
        values: dict[str, float] = {}
        for series in self.series:
            for size in sizes:
                values[f"{series} per {self.unit} @{size}"] = await self._one(
                    engine, series, size, timeout
                )
            first = values[f"{series} per {self.unit} @{sizes[0]}"]
            last = values[f"{series} per {self.unit} @{sizes[-1]}"]
            values[f"{series} largest/smallest"] = last / first
        return Sample(values)

    async def run_once(self, engine: Engine, timeout: float) -> Sample:
        return await self._sizes(engine, self.sizes, timeout)

    async def warm_once(self, engine: Engine, timeout: float) -> Sample:
        return await self._sizes(engine, self.sizes[:1], timeout)

    async def _timed_run(
        self, engine: Engine, workflow_id: str, data: Any, timeout: float
    ) -> tuple[float, Any]:
        execution_id = self._execution_id()
        begin = time.perf_counter()
        result = await engine.run(workflow_id, data, timeout=timeout, execution_id=execution_id)
        elapsed = time.perf_counter() - begin
        self._finished.add(execution_id)
        _check(result)
        return elapsed, result.output


class Size(_Scaled):
    """W4: per-node cost of a chain and of a fan-out at each size."""

    key = "w4"
    workflow_id = "bench-w4"
    series = ("chain", "fan")

    @property
    def title(self) -> str:
        return f"W4 size, chain and 1->n->1 at n = {', '.join(map(str, self.sizes))}"

    @property
    def nodes(self) -> int:
        return sum(2 * n + 2 for n in self.sizes)

    def _workflow_id(self, series: str, size: int) -> str:
        return f"bench-w4-{series}-{size}"

    async def prepare(self, engine: Engine) -> None:
        for size in self.sizes:
            chain = {**chain_workflow(size), "id": self._workflow_id("chain", size)}
            fan = {**fan_workflow(size), "id": self._workflow_id("fan", size)}
            await engine.register(chain)
            await engine.register(fan)

    async def _one(self, engine: Engine, series: str, size: int, timeout: float) -> float:
        elapsed, _ = await self._timed_run(engine, self._workflow_id(series, size), None, timeout)
        nodes = size if series == "chain" else size + 2
        return float(elapsed * 1000 / nodes)


class Loop(_Scaled):
    """W5: per-item cost of a ``for_each`` at each number of items."""

    key = "w5"
    workflow_id = "bench-w5-loop"
    unit = "item"
    series = ("for_each",)

    def __init__(self, sizes: Sequence[int], repeat: int, concurrency: int) -> None:
        super().__init__(sizes, repeat)
        self.concurrency = concurrency

    @property
    def title(self) -> str:
        items = ", ".join(map(str, self.sizes))
        return f"W5 for_each over n = {items} items, concurrency {self.concurrency}"

    @property
    def nodes(self) -> int:
        return sum(self.sizes)

    async def prepare(self, engine: Engine) -> None:
        await engine.register(loop_workflow(self.workflow_id, self.concurrency))

    async def _one(self, engine: Engine, series: str, size: int, timeout: float) -> float:
        data = {"items": loop_items(size)}
        elapsed, output = await self._timed_run(engine, self.workflow_id, data, timeout)
        if not isinstance(output, list) or len(output) != size:
            got = len(output) if isinstance(output, list) else type(output).__name__
            raise RuntimeError(f"the loop over {size} items returned {got} results")
        if any(entry.get("i") != index for index, entry in enumerate(output)):
            raise RuntimeError("the loop's results are not in item order")
        return float(elapsed * 1000 / size)


# -------------------------------------------------------------- presentation
@dataclass(frozen=True, slots=True)
class Point:
    backend: str
    workload: str
    series: str
    unit: str
    size: int
    per_ms: float


def points(results: Sequence[WorkloadResult]) -> list[Point]:
    """The median per-node (per-item) cost of each size of W4 / W5, by backend."""
    found = []
    for result in results:
        if result.workload not in ("w4", "w5") or result.error:
            continue
        for metric in result.metrics:
            match = PER.match(metric.name)
            summary = metric.summary
            if match is None or summary is None:
                continue
            found.append(
                Point(
                    result.backend,
                    result.workload,
                    match["series"],
                    match["unit"],
                    int(match["size"]),
                    summary.median,
                )
            )
    return found


def scale_table(results: Sequence[WorkloadResult]) -> str | None:
    """backend, series, size, per-node ms and the multiple of the smallest size's."""
    found = points(results)
    if not found:
        return None
    smallest: dict[tuple[str, str], Point] = {}
    for point in found:
        key = (point.backend, point.series)
        if key not in smallest or point.size < smallest[key].size:
            smallest[key] = point
    rows = [
        [
            p.backend,
            f"{p.workload.upper()} {p.series}",
            f"{p.size:,}",
            format_number(p.per_ms),
            f"{p.per_ms / smallest[(p.backend, p.series)].per_ms:.2f}x",
        ]
        for p in found
    ]
    headers = ["backend", "workload", "size", "ms per node/item", "x smallest size"]
    return format_table(headers, rows)


def write_plot(results: Sequence[WorkloadResult], path: Path) -> str | None:
    """A PNG of per-node / per-item cost against size (log-log); None when matplotlib
    is missing or there is nothing to plot, else the path written."""
    found = points(results)
    if not found:
        return None
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        pyplot = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None
    figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.5))
    for axis, workload, unit in ((axes[0], "w4", "node"), (axes[1], "w5", "item")):
        lines = sorted({(p.backend, p.series) for p in found if p.workload == workload})
        for backend, series in lines:
            mine = sorted(
                (
                    p
                    for p in found
                    if (p.workload, p.backend, p.series) == (workload, backend, series)
                ),
                key=lambda p: p.size,
            )
            axis.plot(
                [p.size for p in mine], [p.per_ms for p in mine], "o-", label=f"{series}, {backend}"
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("nodes" if unit == "node" else "items")
        axis.set_ylabel(f"ms per {unit}")
        axis.set_title(f"{workload.upper()}: cost per {unit} against size (flat = scales)")
        axis.grid(True, which="both", alpha=0.3)
        if lines:
            axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return str(path)
