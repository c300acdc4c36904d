"""The three workloads of DESIGN §9: workflow builders (pure) and one timed run each.

- W1 chain: ``steps`` sequential no-op nodes. Per-step latency two ways: the run's total
  time over ``steps``, and the deltas between successive ``node.*.succeeded`` events as
  they arrive here (timestamped with :func:`time.perf_counter`; the events' own ``time``
  field only has the orchestrator's clock, not the client's arrival).
- W2 fan-out/fan-in: one root, ``width`` parallel no-op nodes, one join node receiving
  their ``width`` outputs (``aggregate: map``) -> total seconds.
- W3: ``executions`` concurrent executions of the 10-node diamond DAG -> executions/s and
  node executions/s, from the first start to the last completion.

A run that does not succeed raises :class:`RunFailedError`; the caller bounds each run
with a timeout and calls :meth:`Workload.abort` to cancel what is left in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.report import (
    W1_EVENT_MEDIAN,
    W1_EVENT_P99,
    W1_STEP,
    W2_TOTAL,
    W3_EXECUTIONS,
    W3_NODES,
    Metric,
    percentile,
)
from bench.tasks import NOOP
from spane import Engine, ExecutionResult
from spane.bus.base import Subscription
from spane.schemas.events import LifecycleEvent

CHAIN_ID = "bench-w1-chain"
FAN_ID = "bench-w2-fan"
DIAMOND_ID = "bench-w3-diamond"
READY_ID = "bench-ready"

DIAMOND_EDGES: dict[str, tuple[str, ...]] = {
    "a": (),
    "b": ("a",),
    "c": ("a",),
    "d": ("a",),
    "e": ("b", "c"),
    "f": ("d",),
    "g": ("e", "f"),
    "h": ("g",),
    "i": ("g",),
    "j": ("h", "i"),
}
"""a -> b,c,d; b,c -> e; d -> f; e,f -> g; g -> h,i; h,i -> j (DESIGN §9)."""

EVENT_GRACE = 5.0
"""Seconds to wait for node events still in flight when the execution has finished."""
ABORT_TIMEOUT = 10.0


# ------------------------------------------------------------------- builders
def _noop(node_id: str, after: Sequence[str] = ()) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "function": NOOP}
    if after:
        node["after"] = list(after)
    return node


def chain_workflow(steps: int) -> dict[str, Any]:
    """``s0000 -> s0001 -> ... -> s<steps-1>``, every node a no-op function."""
    if steps < 1:
        raise ValueError("a chain needs at least one step")
    ids = [f"s{i:04d}" for i in range(steps)]
    nodes = [_noop(ids[0])] + [_noop(node, [prev]) for prev, node in itertools.pairwise(ids)]
    return {"id": CHAIN_ID, "nodes": nodes}


def fan_workflow(width: int) -> dict[str, Any]:
    """``fan -> p0000..p<width-1> -> join``; the join gets every output as a map."""
    if width < 1:
        raise ValueError("a fan-out needs at least one branch")
    branches = [f"p{i:04d}" for i in range(width)]
    join = {**_noop("join", branches), "aggregate": "map"}
    return {
        "id": FAN_ID,
        "nodes": [_noop("fan"), *(_noop(b, ["fan"]) for b in branches), join],
    }


def diamond_workflow() -> dict[str, Any]:
    """The 10-node diamond DAG of DESIGN §9."""
    return {
        "id": DIAMOND_ID,
        "nodes": [_noop(node, after) for node, after in DIAMOND_EDGES.items()],
    }


def ready_workflow() -> dict[str, Any]:
    """One no-op node: a deployment that runs it is ready."""
    return {"id": READY_ID, "nodes": [_noop("ping")]}


# --------------------------------------------------------------------- runs
class RunFailedError(RuntimeError):
    """An execution of a workload did not succeed."""


@dataclass(slots=True)
class Sample:
    """One repetition: a value per metric name, plus raw extras for the JSON."""

    values: dict[str, float]
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sizes:
    chain_steps: int = 200
    fan_width: int = 500
    diamonds: int = 200


def _check(result: ExecutionResult) -> None:
    if not result.succeeded:
        error = f": {result.error.type}: {result.error.message}" if result.error else ""
        raise RunFailedError(f"execution {result.execution_id} {result.status}{error}")


class Workload(ABC):
    """One workload: registers its workflow, runs timed repetitions, cleans up."""

    key: str
    workflow_id: str
    repeat: int | None = None
    """Timed repetitions when the workload fixes its own (W4, W5); None: the options'."""

    def __init__(self) -> None:
        self._started: list[str] = []
        self._finished: set[str] = set()

    @property
    @abstractmethod
    def title(self) -> str: ...

    @property
    @abstractmethod
    def nodes(self) -> int:
        """Node executions in one run."""

    @abstractmethod
    def workflow(self) -> dict[str, Any]: ...

    @abstractmethod
    def metrics(self) -> list[Metric]:
        """Empty metrics, in display order; ``Sample.values`` uses their names."""

    @abstractmethod
    async def run_once(self, engine: Engine, timeout: float) -> Sample: ...

    async def warm_once(self, engine: Engine, timeout: float) -> Sample:
        """One warm-up run (W4 and W5 warm up on their smallest size only)."""
        return await self.run_once(engine, timeout)

    async def prepare(self, engine: Engine) -> None:
        await engine.register(self.workflow())

    async def finish(self, engine: Engine) -> None:
        """Release what :meth:`prepare` set up."""
        return None

    def _execution_id(self) -> str:
        execution_id = uuid.uuid4().hex
        self._started.append(execution_id)
        return execution_id

    async def abort(self, engine: Engine) -> None:
        """Cancel every execution this workload started that has not finished."""
        unfinished = [e for e in self._started if e not in self._finished]

        async def cancel(execution_id: str) -> None:
            with contextlib.suppress(Exception):
                await engine.cancel(execution_id, reason="benchmark run aborted")

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ABORT_TIMEOUT):
                await asyncio.gather(*(cancel(e) for e in unfinished))
        self._finished.update(unfinished)


class _Arrivals:
    """When each ``node.*.succeeded`` event of one execution arrived here."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.times: list[float] = []
        self.complete = asyncio.Event()

    def add(self, at: float) -> None:
        self.times.append(at)
        if len(self.times) >= self.expected:
            self.complete.set()


class Chain(Workload):
    """W1: per-step latency of a long sequential chain."""

    key = "w1"
    workflow_id = CHAIN_ID

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self._arrivals: dict[str, _Arrivals] = {}
        self._subscription: Subscription | None = None

    @property
    def title(self) -> str:
        return f"W1 chain, {self.steps} steps"

    @property
    def nodes(self) -> int:
        return self.steps

    def workflow(self) -> dict[str, Any]:
        return chain_workflow(self.steps)

    def metrics(self) -> list[Metric]:
        return [
            Metric(W1_STEP, "ms"),
            Metric(W1_EVENT_MEDIAN, "ms"),
            Metric(W1_EVENT_P99, "ms"),
        ]

    async def prepare(self, engine: Engine) -> None:
        await super().prepare(engine)
        pattern = f"node.{CHAIN_ID}.*.succeeded"
        self._subscription = await engine.subscribe(pattern, self._on_event)

    async def finish(self, engine: Engine) -> None:
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None

    async def _on_event(self, routing_key: str, event: LifecycleEvent) -> None:
        arrivals = self._arrivals.get(event.subject)
        if arrivals is not None:
            arrivals.add(time.perf_counter())

    async def run_once(self, engine: Engine, timeout: float) -> Sample:
        execution_id = self._execution_id()
        arrivals = self._arrivals[execution_id] = _Arrivals(self.steps)
        begin = time.perf_counter()
        try:
            result = await engine.run(CHAIN_ID, None, timeout=timeout, execution_id=execution_id)
            elapsed = time.perf_counter() - begin
            self._finished.add(execution_id)
            _check(result)
            with contextlib.suppress(TimeoutError):  # events may trail the execution's end
                async with asyncio.timeout(EVENT_GRACE):
                    await arrivals.complete.wait()
        finally:
            self._arrivals.pop(execution_id, None)
        deltas = [(b - a) * 1000 for a, b in itertools.pairwise(arrivals.times)]
        values = {W1_STEP: elapsed * 1000 / self.steps}
        if len(deltas) >= 2:
            values[W1_EVENT_MEDIAN] = statistics.median(deltas)
            values[W1_EVENT_P99] = percentile(deltas, 99)
        raw = {"total_s": elapsed, "events": len(arrivals.times), "deltas_ms": deltas}
        return Sample(values, raw)


class FanOutIn(Workload):
    """W2: one root, ``width`` parallel nodes, one join of all their outputs."""

    key = "w2"
    workflow_id = FAN_ID

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    @property
    def title(self) -> str:
        return f"W2 fan-out/in 1->{self.width}->1"

    @property
    def nodes(self) -> int:
        return self.width + 2

    def workflow(self) -> dict[str, Any]:
        return fan_workflow(self.width)

    def metrics(self) -> list[Metric]:
        return [Metric(W2_TOTAL, "s"), Metric(W3_NODES, "1/s", better="higher")]

    async def run_once(self, engine: Engine, timeout: float) -> Sample:
        execution_id = self._execution_id()
        begin = time.perf_counter()
        result = await engine.run(FAN_ID, None, timeout=timeout, execution_id=execution_id)
        elapsed = time.perf_counter() - begin
        self._finished.add(execution_id)
        _check(result)
        return Sample({W2_TOTAL: elapsed, W3_NODES: self.nodes / elapsed}, {"total_s": elapsed})


class Diamonds(Workload):
    """W3: many small executions at once."""

    key = "w3"
    workflow_id = DIAMOND_ID

    def __init__(self, executions: int) -> None:
        super().__init__()
        self.executions = executions

    @property
    def title(self) -> str:
        return f"W3 {self.executions} x 10-node diamond"

    @property
    def nodes(self) -> int:
        return self.executions * len(DIAMOND_EDGES)

    def workflow(self) -> dict[str, Any]:
        return diamond_workflow()

    def metrics(self) -> list[Metric]:
        return [
            Metric(W3_EXECUTIONS, "1/s", better="higher"),
            Metric(W3_NODES, "1/s", better="higher"),
            Metric("execution latency p50", "ms"),
        ]

    async def run_once(self, engine: Engine, timeout: float) -> Sample:
        ids = [self._execution_id() for _ in range(self.executions)]

        async def one(execution_id: str) -> float:
            started = time.perf_counter()
            await engine.start(DIAMOND_ID, None, execution_id=execution_id)
            result = await engine.wait(execution_id, timeout)
            self._finished.add(execution_id)
            _check(result)
            return time.perf_counter() - started

        begin = time.perf_counter()
        latencies = await asyncio.gather(*(one(e) for e in ids))
        elapsed = time.perf_counter() - begin
        latencies_ms = [latency * 1000 for latency in latencies]
        values = {
            W3_EXECUTIONS: self.executions / elapsed,
            W3_NODES: self.nodes / elapsed,
            "execution latency p50": statistics.median(latencies_ms),
        }
        raw = {
            "total_s": elapsed,
            "latency_p99_ms": percentile(latencies_ms, 99),
        }
        return Sample(values, raw)


WORKLOADS = ("w1", "w2", "w3")


def build(key: str, sizes: Sizes) -> Workload:
    if key == "w1":
        return Chain(sizes.chain_steps)
    if key == "w2":
        return FanOutIn(sizes.fan_width)
    if key == "w3":
        return Diamonds(sizes.diamonds)
    raise ValueError(f"unknown workload {key!r}; known: {', '.join(WORKLOADS)}")
