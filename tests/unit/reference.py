"""An independent reference interpreter of SPANE's graph semantics (DESIGN.md §2).

Written from the sections "Edges and ports", "Joins and skip propagation", "Outcome of
an execution" and "Data passing" of ``DESIGN.md``, not from ``spane.core``: nothing
here imports the engine. ``tests/unit/test_differential.py`` runs random graphs through
both and compares every node's final status, the execution's status, error and output.

The language subset
-------------------
A :class:`Dag` is a list of nodes in definition order (edges only go to earlier nodes):

- ``task`` nodes (a ``function`` node) whose every attempt's outcome is given by the
  case: ``ok`` (succeeds), ``fail`` (fails on every attempt, so for good after its
  retries) or ``flaky`` (the first attempt fails, the retry succeeds); every task has
  a retry policy of 2 attempts. A task's output is ``{node_id: digest(its data)}``
  (:func:`task_output`), so each output depends on everything the node received and
  the execution's output checks the whole data flow;
- ``noop`` nodes (pass their data through) and ``switch`` nodes (first case whose
  condition holds fires its port, else ``default``; output: their data);
- ``after`` references ``(source, port)`` with port ``success`` (the bare id), ``error``,
  ``always``, or a switch's case name / ``default``; joins ``all``, ``any`` or an int N
  (``{at_least: N}``); aggregates ``map``, ``list``, ``merge``, ``first``;
- ``when`` guards and switch case conditions are :class:`Cond`: ``input.flags[i]``,
  possibly negated, over the execution input ``{"flags": [bool, ...]}``.

Completion order (why it is explicit)
-------------------------------------
An unhandled failure cancels whatever runs *at that moment* and only ``.always``
successors start afterwards, so statuses and outputs depend on the order in which the
tasks in flight finish. The reference does not restrict the graphs to make that order
irrelevant (that would rule out exactly the interesting cases: a failure racing a
sibling branch, a retry racing a failure, a finally branch outliving the failure);
instead the order is an input. Between two events the set of *pending events* is:

- every task attempt out with a worker (a ``running`` node),
- every retry timer armed (a node waiting before its second attempt),
- every *late result*: a task attempt cancelled by an unhandled failure whose worker
  still answers later (the engine must ignore it; here it changes nothing).

:meth:`Reference.pending_events` lists them sorted by definition order; the driver
picks one by index (``choice % len``) from a drawn list of choices, and the
differential test drives the engine with the very same rule, so both see the same
completion order as long as they agree on what is pending (a disagreement there shows
up as a status difference anyway).

Within one event (a task result arriving, say) the core settles a cascade of nodes
instantly: control nodes need no worker round trip. DESIGN.md does not order the
steps of a cascade, and it matters only for *which* edges an ``any``/``at_least``
node has seen fire when it resolves (its data; never a status: join verdicts only
move forward). The reference fixes the natural work-list order and documents it:

- a settling node updates its outgoing edges child by child in definition order, each
  child's edges in its ``after`` order; a child whose join resolves is appended to a
  FIFO work list; roots start in definition order;
- an unhandled failure cancels the nodes in flight (in the order they last became in
  flight: dispatched or put to wait for a retry) before the failed node's own ports
  fire ("fails the execution at once").

Choices where DESIGN.md is silent (each marked ``SILENT`` below)
----------------------------------------------------------------
- A succeeded ``switch`` fires its bare-id (success) port as well as its case port.
- What flows along an edge: success/case/default ports carry the source's output,
  ``.error`` carries its error, ``.always`` its output if it succeeded, else its error
  (``None`` for a skipped node, which has neither).
- Errors are compared by ``{type, node_id}`` only (messages are free text): a task
  failure is ``{type: "Boom", node_id}``, a node cancelled by an unhandled failure
  ``{type: "Cancelled", node_id}`` (DESIGN: "``type`` is the exception class name (or
  ``Timeout``, ``Cancelled``, ...)").
- A cancelled node (in flight when an unhandled failure happened) has settled, so it
  fires ``.always`` ("settled, whatever the outcome"), like a skipped node.
- "Finally branches run to completion": a node started while the execution is failing
  because a fired incoming edge is an ``.always`` edge, or comes from another node
  started that way, runs (and retries) normally; a node already in flight when the
  failure happens is cancelled even if it was an ``.always`` successor ("running nodes
  are cancelled").
- A node whose join fires while failing and that is not part of a finally branch is
  ``cancelled`` (it never started), before its guard is looked at.
- ``merge`` ignores values that are not dicts; ``first`` is the first fired upstream
  in ``after`` order.

Two points where the specification's words and the engine differ were decided for the
engine and recorded in the README's design notes (``DECIDED``): an ``aggregate: list``
node receives a list even from one fired upstream, and the default output is ``None``
when no leaf succeeded. The named constants (:data:`LIST_OF_ONE_IS_LIST`,
:data:`NO_SUCCEEDED_LEAF_OUTPUT`) hold those decisions.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["task", "noop", "switch"]
Behaviour = Literal["ok", "fail", "flaky"]
Join = Literal["all", "any"] | int
"""``all``, ``any`` or N for ``{at_least: N}``."""

SUCCESS, ERROR, ALWAYS, DEFAULT = "success", "error", "always", "default"
MAX_ATTEMPTS = 2
"""Every task's retry policy: two attempts."""
TASK_ERROR = "Boom"
"""The error type of a failed task attempt."""
CANCELLED_ERROR = "Cancelled"
SETTLED = frozenset({"succeeded", "failed", "skipped", "cancelled"})

# DECIDED (README, design notes): where the specification's words and the engine
# differed, the engine's reading stands.
LIST_OF_ONE_IS_LIST = True
"""DESIGN: "A node with one fired upstream receives that node's output" (aggregate
modes are listed for "several"); the engine gives ``aggregate: list`` nodes ``[output]``."""
NO_SUCCEEDED_LEAF_OUTPUT: Any = None
"""DESIGN: the default output is "``{leaf_id: output}`` over the leaves that succeeded",
i.e. ``{}`` when none did; the engine's output is then ``None``."""


@dataclass(frozen=True, slots=True)
class Cond:
    """``input.flags[flag]``, or ``!input.flags[flag]`` when ``negate``."""

    flag: int
    negate: bool = False

    def holds(self, flags: list[bool]) -> bool:
        return flags[self.flag] != self.negate


@dataclass(frozen=True, slots=True)
class Ref:
    """An ``after`` entry: ``source`` firing ``port`` feeds the node."""

    source: str
    port: str = SUCCESS


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: Kind
    after: tuple[Ref, ...] = ()
    join: Join = "all"
    aggregate: Literal["map", "list", "merge", "first"] = "map"
    when: Cond | None = None
    cases: tuple[tuple[str, Cond], ...] = ()
    """Switch only: ``(case name, condition)`` in order."""
    behaviour: Behaviour = "ok"
    """Task only."""


@dataclass(frozen=True, slots=True)
class Dag:
    nodes: tuple[Node, ...]

    def node(self, node_id: str) -> Node:
        return next(node for node in self.nodes if node.id == node_id)


@dataclass(frozen=True, slots=True)
class Event:
    """A pending event: ``result`` of a running attempt, ``retry`` timer, ``late`` result."""

    node_id: str
    kind: Literal["result", "retry", "late"]


@dataclass(frozen=True, slots=True)
class Outcome:
    nodes: dict[str, str]
    """node id -> succeeded / failed / skipped / cancelled (or what it was left at)."""
    status: str
    """succeeded / failed (or running if the execution never finished)."""
    output: Any
    error: dict[str, Any] | None
    """``{type, node_id}`` of the first unhandled error."""


def error_token(kind: str, node_id: str) -> dict[str, Any]:
    return {"type": kind, "node_id": node_id}


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def task_output(node_id: str, data: Any) -> dict[str, str]:
    """What every simulated task returns: depends on all the data it received."""
    return {node_id: digest(data)}


def attempt_succeeds(behaviour: Behaviour, attempt: int) -> bool:
    return behaviour == "ok" or (behaviour == "flaky" and attempt >= 2)


@dataclass
class _State:
    status: str = "pending"
    attempt: int = 0
    data: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    fired: frozenset[str] = frozenset()
    edges: dict[int, bool] = field(default_factory=dict)
    """Index in ``after`` -> fired, recorded until the join resolves."""


class Reference:
    """One execution of a :class:`Dag`, driven event by event."""

    def __init__(self, dag: Dag, flags: list[bool]) -> None:
        self.dag = dag
        self.input: dict[str, Any] = {"flags": list(flags)}
        self.flags = list(flags)
        self.state = {node.id: _State() for node in dag.nodes}
        self.order = {node.id: index for index, node in enumerate(dag.nodes)}
        self.children: dict[str, list[tuple[Node, int]]] = {n.id: [] for n in dag.nodes}
        for node in dag.nodes:  # children in definition order, edges in `after` order
            for index, ref in enumerate(node.after):
                self.children[ref.source].append((node, index))
        self.in_flight: list[str] = []
        """Running or waiting for a retry, in the order they last became so."""
        self.late: set[str] = set()
        self.failing = False
        self.finally_nodes: set[str] = set()
        self.error: dict[str, Any] | None = None
        self.status = "running"
        self.output: Any = None
        self._work: deque[tuple[str, bool]] = deque()
        self.handled: list[Event] = []
        """Every event handled, in order (for coverage statistics)."""

    # ------------------------------------------------------------------ driving
    def start(self) -> Reference:
        for node in self.dag.nodes:
            if not node.after:
                self._ready(node.id, fire=True)
        self._run()
        return self

    def pending_events(self) -> list[Event]:
        events = [
            Event(node_id, "result" if self.state[node_id].status == "running" else "retry")
            for node_id in self.in_flight
        ]
        events += [Event(node_id, "late") for node_id in self.late]
        return sorted(events, key=lambda event: self.order[event.node_id])

    def handle(self, event: Event) -> None:
        self.handled.append(event)
        state = self.state[event.node_id]
        if event.kind == "late":
            self.late.discard(event.node_id)  # a cancelled attempt's result: ignored
            return
        node = self.dag.node(event.node_id)
        if event.kind == "retry":
            assert state.status == "waiting"
            self._dispatch(node)
        else:
            assert state.status == "running"
            if attempt_succeeds(node.behaviour, state.attempt):
                output = task_output(node.id, state.data)
                self._settle(node, "succeeded", output=output, ports=(SUCCESS,))
            else:
                self._attempt_failed(node)
        self._run()

    def run(self, choices: list[int], max_events: int = 1_000) -> Outcome:
        """Start, then handle pending events picked by ``choices`` (then the first)."""
        self.start()
        picks = iter(choices)
        for _ in range(max_events):
            events = self.pending_events()
            if not events:
                break
            self.handle(events[next(picks, 0) % len(events)])
        return self.outcome()

    def outcome(self) -> Outcome:
        return Outcome(
            nodes={node_id: state.status for node_id, state in self.state.items()},
            status=self.status,
            output=self.output,
            error=self.error,
        )

    # ------------------------------------------------------------ the semantics
    def _verdict(self, node: Node, edges: dict[int, bool]) -> bool | None:
        """Join resolution: True fire, False skip, None not yet ("Joins and skip...")."""
        total, settled = len(node.after), len(edges)
        fired = sum(edges.values())
        if node.join == "all":  # every edge settled; runs if at least one fired
            return None if settled < total else fired > 0
        needed = 1 if node.join == "any" else node.join
        if fired >= needed:  # runs as soon as N fired
            return True
        if fired + (total - settled) < needed:  # skipped once that became impossible
            return False
        return None

    def _ready(self, node_id: str, fire: bool) -> None:
        self.state[node_id].status = "ready"
        self._work.append((node_id, fire))

    def _run(self) -> None:
        while self._work:
            node_id, fire = self._work.popleft()
            node = self.dag.node(node_id)
            if fire:
                self._activate(node)
            else:
                self._settle(node, "skipped")
        self._finish_if_done()

    def _is_finally(self, node: Node) -> bool:
        edges = self.state[node.id].edges
        return any(
            edges.get(index) and (ref.port == ALWAYS or ref.source in self.finally_nodes)
            for index, ref in enumerate(node.after)
        )

    def _activate(self, node: Node) -> None:
        if self.failing:  # nothing new starts except finally branches
            if not self._is_finally(node):
                self._settle(node, "cancelled", error=error_token(CANCELLED_ERROR, node.id))
                return
            self.finally_nodes.add(node.id)
        data = self._gather(node)
        if node.when is not None and not node.when.holds(self.flags):
            self._settle(node, "skipped")
            return
        self.state[node.id].data = data
        if node.kind == "task":
            self._dispatch(node)
        elif node.kind == "noop":
            self._settle(node, "succeeded", output=data, ports=(SUCCESS,))
        else:
            port = next((name for name, cond in node.cases if cond.holds(self.flags)), DEFAULT)
            self._settle(node, "succeeded", output=data, ports=(SUCCESS, port))  # SILENT

    def _dispatch(self, node: Node) -> None:
        state = self.state[node.id]
        state.status = "running"
        state.attempt += 1
        self._in_flight(node.id)

    def _in_flight(self, node_id: str) -> None:
        if node_id in self.in_flight:
            self.in_flight.remove(node_id)
        self.in_flight.append(node_id)

    def _attempt_failed(self, node: Node) -> None:
        state = self.state[node.id]
        error = error_token(TASK_ERROR, node.id)
        if state.attempt < MAX_ATTEMPTS:
            state.status = "waiting"  # the retry timer is armed
            self._in_flight(node.id)
            return
        self._settle(node, "failed", error=error)

    def _settle(
        self,
        node: Node,
        status: str,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
        ports: tuple[str, ...] = (),
    ) -> None:
        state = self.state[node.id]
        if state.status in SETTLED:
            return
        if status == "failed":
            ports = (*ports, ERROR)
        state.status, state.output, state.error = status, output, error
        state.fired = frozenset((*ports, ALWAYS))  # `.always`: settled, whatever the outcome
        if node.id in self.in_flight:
            self.in_flight.remove(node.id)
        handled = any(child.after[i].port == ERROR for child, i in self.children[node.id])
        if status == "failed" and not handled:  # handled: one of its `.error` edges exists
            assert error is not None
            self._begin_failing(error)
        self._propagate(node.id)

    def _begin_failing(self, error: dict[str, Any]) -> None:
        """An unhandled failure: the execution fails; what runs is cancelled."""
        if self.failing:
            return  # the execution keeps its first unhandled error
        self.failing, self.error = True, error
        for node_id in list(self.in_flight):
            if node_id in self.finally_nodes:
                continue
            if self.state[node_id].status == "running":
                self.late.add(node_id)  # its worker answers later; ignored
            cancelled = error_token(CANCELLED_ERROR, node_id)
            self._settle(self.dag.node(node_id), "cancelled", error=cancelled)

    def _propagate(self, source: str) -> None:
        fired = self.state[source].fired
        for child, index in self.children[source]:
            state = self.state[child.id]
            if state.status != "pending":
                continue  # already resolved: later edges are ignored
            state.edges[index] = child.after[index].port in fired
            verdict = self._verdict(child, state.edges)
            if verdict is not None:
                self._ready(child.id, fire=verdict)

    def _edge_value(self, ref: Ref) -> Any:  # SILENT
        source = self.state[ref.source]
        if ref.port == ERROR or (ref.port == ALWAYS and source.status != "succeeded"):
            return source.error
        return source.output

    def _gather(self, node: Node) -> Any:
        """ "Data passing": roots get the input; one fired upstream its value; several
        an aggregate of the fired ones (in ``after`` order, one value per upstream)."""
        if not node.after:
            return self.input
        edges = self.state[node.id].edges
        values: dict[str, Any] = {}
        for index, ref in enumerate(node.after):
            if edges.get(index) and ref.source not in values:
                values[ref.source] = self._edge_value(ref)
        if node.aggregate == "list" and LIST_OF_ONE_IS_LIST:  # DECIDED
            return list(values.values())
        if len(values) == 1:
            return next(iter(values.values()))
        return _aggregate(node.aggregate, values)

    def _finish_if_done(self) -> None:
        if self.status != "running" or self.in_flight or self._work:
            return
        if self.failing:
            self.status = "failed"
            return
        if any(s.status not in SETTLED for s in self.state.values()):
            return  # some node is still pending (not reachable in a DAG; kept as a guard)
        self.status = "succeeded"
        self.output = self._default_output()

    def _default_output(self) -> Any:
        """The single succeeded leaf's output, or ``{leaf_id: output}`` over them."""
        outputs = {
            node_id: state.output
            for node_id, state in self.state.items()
            if not self.children[node_id] and state.status == "succeeded"
        }
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        if not outputs:
            return NO_SUCCEEDED_LEAF_OUTPUT  # DECIDED
        return outputs


def run_reference(dag: Dag, flags: list[bool], choices: list[int]) -> Outcome:
    """The outcome of ``dag`` on input ``{"flags": flags}`` in the order ``choices`` picks."""
    return Reference(dag, flags).run(choices)


def _aggregate(mode: str, values: dict[str, Any]) -> Any:
    """Several fired upstreams: ``map`` (default), ``list``, ``first`` or ``merge``."""
    if mode == "list":
        return list(values.values())
    if mode == "first":
        return next(iter(values.values()))
    if mode == "merge":
        merged: dict[str, Any] = {}
        for value in values.values():
            if isinstance(value, dict):  # SILENT
                merged.update(value)
        return merged
    return values
