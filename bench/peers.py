"""Peers in the same run (DESIGN §9): the pure parts of ``python -m bench --peers celery``.

- :func:`dag_to_canvas` turns a DAG (``{node: upstreams}``) into a series-parallel
  canvas expression (:class:`Task`, :class:`Chain`, :class:`Group`) that adds no
  dependency the DAG does not have, or refuses the DAG; :func:`render` builds it with a
  :class:`CanvasFactory` (Celery's ``signature`` / ``chain`` / ``group`` / ``chord`` in
  :mod:`bench.celery_run`, a recording fake in the tests). A group followed by anything
  in a chain becomes a ``chord`` of the group into what follows (what Celery itself does
  with ``group | task``).

  W3's diamond (a -> b,c,d; b,c -> e; d -> f; e,f -> g; g -> h,i; h,i -> j) maps to::

      chain(a, chord(group(chord(group(b, c), e), chain(d, f)), g), chord(group(h, i), j))

- :func:`peer_ratios` computes SPANE / peer ratios per workload from the results of the
  same run, and :func:`peer_ratios_table` prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from bench.report import W1_STEP, W2_TOTAL, W3_NODES, WorkloadResult, format_table

PEERS = ("celery",)
S = TypeVar("S")


# ------------------------------------------------------------------- canvas
@dataclass(frozen=True, slots=True)
class Task:
    node: str


@dataclass(frozen=True, slots=True)
class Chain:
    steps: tuple[Canvas, ...]


@dataclass(frozen=True, slots=True)
class Group:
    branches: tuple[Canvas, ...]


Canvas = Task | Chain | Group


class NotSeriesParallelError(ValueError):
    """The DAG needs a dependency pattern that chains and groups cannot express exactly."""


def _descendants(children: Mapping[str, set[str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def visit(node: str) -> set[str]:
        if node not in found:
            below: set[str] = set()
            for child in children[node]:
                below |= {child, *visit(child)}
            found[node] = below
        return found[node]

    for node in children:
        visit(node)
    return found


def _topological(edges: Mapping[str, Sequence[str]]) -> list[str]:
    order: list[str] = []
    placed: set[str] = set()
    pending = list(edges)
    while pending:
        ready = [n for n in pending if all(p in placed for p in edges[n])]
        if not ready:
            raise ValueError(f"the graph has a cycle among {sorted(pending)}")
        order += ready
        placed.update(ready)
        pending = [n for n in pending if n not in placed]
    return order


def _components(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Weakly connected components of the subgraph ``nodes``, in ``nodes`` order."""
    owner = {node: node for node in nodes}

    def root(node: str) -> str:
        while owner[node] != node:
            node = owner[node]
        return node

    for node in nodes:
        for parent in edges[node]:
            if parent in owner:
                owner[root(node)] = root(parent)
    groups: dict[str, list[str]] = {}
    for node in nodes:
        groups.setdefault(root(node), []).append(node)
    return list(groups.values())


def _series_cut(nodes: Sequence[str], below: Mapping[str, set[str]]) -> int | None:
    """The shortest prefix (of a topological order) every node of which precedes every
    node after it; such a prefix is one in every topological order."""
    for cut in range(1, len(nodes)):
        rest = set(nodes[cut:])
        if all(rest <= below[node] for node in nodes[:cut]):
            return cut
    return None


def dag_to_canvas(edges: Mapping[str, Sequence[str]]) -> Canvas:
    """The series-parallel canvas of a DAG given as ``{node: its upstream nodes}``."""
    if not edges:
        raise ValueError("an empty graph has no canvas")
    unknown = {p for parents in edges.values() for p in parents} - set(edges)
    if unknown:
        raise ValueError(f"upstreams that are not nodes: {sorted(unknown)}")
    children: dict[str, set[str]] = {node: set() for node in edges}
    for node, parents in edges.items():
        for parent in parents:
            children[parent].add(node)
    order = _topological(edges)  # refuses a cycle before anything walks it
    return _decompose(order, edges, _descendants(children))


def _decompose(
    nodes: Sequence[str], edges: Mapping[str, Sequence[str]], below: Mapping[str, set[str]]
) -> Canvas:
    if len(nodes) == 1:
        return Task(nodes[0])
    parts = _components(nodes, edges)
    if len(parts) > 1:
        return Group(tuple(_decompose(part, edges, below) for part in parts))
    cut = _series_cut(nodes, below)
    if cut is None:
        raise NotSeriesParallelError(
            f"nodes {list(nodes)} are neither parallel branches nor a sequence"
        )
    head = _decompose(nodes[:cut], edges, below)
    tail = _decompose(nodes[cut:], edges, below)
    steps = [*_flatten(head), *_flatten(tail)]
    return Chain(tuple(steps))


def _flatten(canvas: Canvas) -> tuple[Canvas, ...]:
    return canvas.steps if isinstance(canvas, Chain) else (canvas,)


def canvas_nodes(canvas: Canvas) -> list[str]:
    """Every node of a canvas, each once, in the order they appear."""
    if isinstance(canvas, Task):
        return [canvas.node]
    parts = canvas.steps if isinstance(canvas, Chain) else canvas.branches
    return [node for part in parts for node in canvas_nodes(part)]


def describe(canvas: Canvas) -> str:
    """Celery-like text: ``chain(a, chord(group(b, c), e))``."""
    if isinstance(canvas, Task):
        return canvas.node
    if isinstance(canvas, Group):
        return f"group({', '.join(describe(b) for b in canvas.branches)})"
    parts = _chorded(canvas.steps)
    texts = [
        f"chord({describe(p[0])}, {describe(p[1])})" if isinstance(p, tuple) else describe(p)
        for p in parts
    ]
    return texts[0] if len(texts) == 1 else f"chain({', '.join(texts)})"


def _chorded(steps: Sequence[Canvas]) -> list[Canvas | tuple[Group, Canvas]]:
    """A chain's steps with each group paired with the step after it (a chord)."""
    out: list[Canvas | tuple[Group, Canvas]] = []
    index = 0
    while index < len(steps):
        step = steps[index]
        if isinstance(step, Group) and index + 1 < len(steps):
            out.append((step, steps[index + 1]))
            index += 2
        else:
            out.append(step)
            index += 1
    return out


class CanvasFactory(Protocol, Generic[S]):
    """What :func:`render` builds with: Celery's primitives, or a fake."""

    def task(self, node: str) -> S: ...
    def chain(self, steps: Sequence[S]) -> S: ...
    def group(self, branches: Sequence[S]) -> S: ...
    def chord(self, header: S, body: S) -> S: ...


def render(canvas: Canvas, factory: CanvasFactory[S]) -> S:
    """Build ``canvas`` with ``factory``: a group followed by a step is a chord."""
    if isinstance(canvas, Task):
        return factory.task(canvas.node)
    if isinstance(canvas, Group):
        return factory.group([render(b, factory) for b in canvas.branches])
    built = [
        factory.chord(render(p[0], factory), render(p[1], factory))
        if isinstance(p, tuple)
        else render(p, factory)
        for p in _chorded(canvas.steps)
    ]
    return built[0] if len(built) == 1 else factory.chain(built)


# ------------------------------------------------------------------- ratios
@dataclass(frozen=True, slots=True)
class PeerRatio:
    """SPANE's figure over the peer's for one workload, measured in the same run."""

    workload: str
    metric: str
    unit: str
    spane: float
    peer: float
    peer_name: str
    spane_backend: str
    higher_is_better: bool

    @property
    def value(self) -> float:
        return self.spane / self.peer

    @property
    def verdict(self) -> str:
        """``SPANE 1.8x slower`` / ``SPANE 1.3x faster`` / ``even``."""
        faster = self.value > 1 if self.higher_is_better else self.value < 1
        factor = self.value if self.value >= 1 else 1 / self.value
        if abs(factor - 1) < 0.005:
            return "even"
        return f"SPANE {factor:.2f}x {'faster' if faster else 'slower'}"


PEER_METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("w1", W1_STEP, "ms", False),
    ("w2", W2_TOTAL, "s", False),
    ("w3", W3_NODES, "1/s", True),
)
"""(workload, metric, unit, higher is better) compared with a peer: W1 per-step time,
W2 total time, W3 node executions/s."""


def _median(results: Sequence[WorkloadResult], backend: str, key: str, metric: str) -> float:
    for result in results:
        if result.backend == backend and result.workload == key and not result.error:
            value = result.median(metric)
            if value:
                return value
    return 0.0


def peer_ratios(results: Sequence[WorkloadResult], peer: str) -> list[PeerRatio]:
    """SPANE / ``peer`` per workload: SPANE's real backend when it ran, else memory."""
    ratios = []
    for key, metric, unit, higher in PEER_METRICS:
        theirs = _median(results, peer, key, metric)
        for backend in ("real", "memory"):
            ours = _median(results, backend, key, metric)
            if ours and theirs:
                ratios.append(PeerRatio(key, metric, unit, ours, theirs, peer, backend, higher))
                break
    return ratios


def peer_ratios_table(ratios: Sequence[PeerRatio], number: Callable[[float], str]) -> str:
    headers = ["workload", "metric", "SPANE", "peer", "SPANE / peer", "verdict"]
    rows = [
        [
            r.workload.upper(),
            f"{r.metric} ({r.unit})",
            f"{number(r.spane)} ({r.spane_backend})",
            f"{number(r.peer)} ({r.peer_name})",
            f"{r.value:.2f}",
            r.verdict,
        ]
        for r in ratios
    ]
    return format_table(headers, rows)


def ratio_document(ratio: PeerRatio) -> dict[str, Any]:
    return {
        "workload": ratio.workload,
        "metric": ratio.metric,
        "unit": ratio.unit,
        "spane": ratio.spane,
        "spane_backend": ratio.spane_backend,
        "peer": ratio.peer_name,
        "peer_value": ratio.peer,
        "spane_over_peer": ratio.value,
        "verdict": ratio.verdict,
    }
