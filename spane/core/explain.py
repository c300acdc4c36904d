"""Why is it waiting? What every unfinished node of an execution waits on. Pure.

:func:`explain` reads a plan and an execution's state (meta + node states) and says,
for each node that has not finished, what holds it: upstream edges still open at its
join, a delay timer, a retry backoff, a signal, a ``max_concurrency`` slot, a
``max_executions`` slot, a worker of its pool, a child execution, or a paused
execution. Each answer is a sentence and structured data. No I/O and no clock: the
caller passes ``now`` (and, if it knows them, how many consumers each pool has).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spane.compiler.plan import NodeKind, Plan, PlanNode
from spane.core.moments import at_moment, moment
from spane.schemas.state import (
    TERMINAL_EXECUTION_STATUSES,
    TERMINAL_NODE_STATUSES,
    ExecutionMeta,
    ExecutionStatus,
    NodeState,
    NodeStatus,
    TimerKind,
    WaitReason,
)
from spane.schemas.workflow import SubWorkflowNode, WaitForSignalNode


class WaitKind(StrEnum):
    UPSTREAM = "upstream"  # edges still open at the node's join
    DELAY = "delay"  # a delay node's timer
    RETRY = "retry"  # the backoff before the next attempt
    SIGNAL = "signal"  # a wait_for_signal node
    CONCURRENCY = "concurrency"  # queued: max_concurrency tasks are running
    EXECUTION_SLOT = "execution_slot"  # the execution waits for a max_executions slot
    WORKER = "worker"  # a task attempt is out with a worker pool
    CHILD = "child"  # a sub-workflow or loop iterations
    PAUSED = "paused"  # the execution is paused
    FINISHED = "finished"  # the execution ended: the node will not run
    STARTING = "starting"  # its join resolved; it starts in the current decision


@dataclass(frozen=True, slots=True)
class OpenEdge:
    """An incoming edge that has not settled: ``source`` has not fired ``port`` yet."""

    edge: str
    source: str
    port: str
    source_status: NodeStatus


@dataclass(frozen=True, slots=True)
class NodeExplanation:
    node_id: str
    status: NodeStatus
    kind: WaitKind
    message: str
    since: float | None = None
    """When the node began waiting on this (dispatch time, start of the wait), if known."""
    until: float | None = None
    """When the timer it waits on fires."""
    remaining: float | None = None
    """Seconds from ``now`` to ``until`` (negative: overdue)."""
    open_edges: tuple[OpenEdge, ...] = ()
    join: str | None = None
    needed: int | None = None
    """Fired edges the join still needs."""
    signal: str | None = None
    signal_schema: Mapping[str, Any] | None = None
    pool: str | None = None
    pool_consumers: int | None = None
    attempt: int | None = None
    queue_position: int | None = None
    """1-based position in the execution's queue."""
    limit: int | None = None
    running: int | None = None
    children: tuple[str, ...] = ()
    deadline: float | None = None
    """When the node gives up (attempt, signal or child timeout), if armed."""
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without empty fields."""
        data: dict[str, Any] = {
            "node_id": self.node_id,
            "status": str(self.status),
            "kind": str(self.kind),
            "message": self.message,
        }
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is None or value == ():
                continue
            if name == "open_edges":
                value = [_edge_dict(edge) for edge in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            data[name] = value
        return data


_OPTIONAL_FIELDS = (
    "since",
    "until",
    "remaining",
    "open_edges",
    "join",
    "needed",
    "signal",
    "signal_schema",
    "pool",
    "pool_consumers",
    "attempt",
    "queue_position",
    "limit",
    "running",
    "children",
    "deadline",
    "notes",
)


def _edge_dict(edge: OpenEdge) -> dict[str, Any]:
    return {
        "edge": edge.edge,
        "source": edge.source,
        "port": edge.port,
        "source_status": str(edge.source_status),
    }


@dataclass(frozen=True, slots=True)
class Explanation:
    execution_id: str
    workflow_id: str
    version: int
    status: ExecutionStatus
    message: str
    """The execution as a whole (paused, pending a slot, finished, running)."""
    now: float
    nodes: tuple[NodeExplanation, ...] = field(default=())

    def node(self, node_id: str) -> NodeExplanation | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "version": self.version,
            "status": str(self.status),
            "message": self.message,
            "now": self.now,
            "nodes": [n.to_dict() for n in self.nodes],
        }


@dataclass(frozen=True, slots=True)
class _Facts:
    """What every node's explanation reads."""

    plan: Plan
    meta: ExecutionMeta
    nodes: Mapping[str, NodeState]
    now: float
    consumers: Mapping[str, int] | None

    def state(self, node_id: str) -> NodeState:
        return self.nodes.get(node_id) or NodeState()


def explain(
    plan: Plan,
    meta: ExecutionMeta,
    nodes: Mapping[str, NodeState],
    now: float,
    *,
    pool_consumers: Mapping[str, int] | None = None,
) -> Explanation:
    """What each unfinished node of the execution waits on, in plan order.

    ``nodes``: the node states as stored (a node never written is PENDING).
    ``pool_consumers``: pool -> consumers, when the caller knows it (else unsaid).
    """
    facts = _Facts(plan, meta, nodes, now, pool_consumers)
    explained = tuple(
        _explain_node(facts, node_id)
        for node_id in plan.order
        if facts.state(node_id).status not in TERMINAL_NODE_STATUSES
    )
    return Explanation(
        execution_id=meta.id,
        workflow_id=meta.workflow_id,
        version=meta.version,
        status=meta.status,
        message=_execution_message(plan, meta, len(explained)),
        now=now,
        nodes=explained,
    )


def _execution_message(plan: Plan, meta: ExecutionMeta, unfinished: int) -> str:
    if meta.status in TERMINAL_EXECUTION_STATUSES:
        return f"the execution is {meta.status}: nothing is waiting"
    if meta.status == ExecutionStatus.PENDING:
        return (
            f"the execution waits for a slot: workflow {meta.workflow_id!r} allows "
            f"{plan.max_executions} running execution(s) at a time (max_executions)"
        )
    if meta.status == ExecutionStatus.PAUSED:
        return (
            "the execution is paused: running tasks finish, nothing new starts and timers "
            "that fire are held until it is resumed"
        )
    failing = "; it is failing: only finally branches may still start" if meta.failing else ""
    return f"the execution is running; {unfinished} node(s) have not finished{failing}"


def _explain_node(facts: _Facts, node_id: str) -> NodeExplanation:
    meta = facts.meta
    state = facts.state(node_id)
    if meta.status in TERMINAL_EXECUTION_STATUSES:
        return NodeExplanation(
            node_id,
            state.status,
            WaitKind.FINISHED,
            f"will not run: the execution is {meta.status}",
        )
    if meta.status == ExecutionStatus.PENDING:
        return NodeExplanation(
            node_id,
            state.status,
            WaitKind.EXECUTION_SLOT,
            f"not started: the execution waits for a max_executions slot "
            f"(limit {facts.plan.max_executions})",
            since=meta.created_at,
            limit=facts.plan.max_executions,
        )
    explanation = _by_status(facts, facts.plan.node(node_id), state)
    return _with_notes(facts, explanation)


def _by_status(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    match state.status:
        case NodeStatus.READY:
            return _ready(facts, node, state)
        case NodeStatus.RUNNING:
            return _running(facts, node, state)
        case NodeStatus.WAITING:
            return _waiting(facts, node, state)
        case _:
            return _pending(facts, node, state)


def _with_notes(facts: _Facts, explanation: NodeExplanation) -> NodeExplanation:
    notes: list[str] = list(explanation.notes)
    paused = facts.meta.status == ExecutionStatus.PAUSED
    if paused and explanation.kind in (WaitKind.DELAY, WaitKind.RETRY):
        notes.append("the execution is paused: if the timer fires it is held until resume")
    if facts.meta.failing and explanation.kind is WaitKind.UPSTREAM:
        notes.append("the execution is failing: it starts only if it is a finally branch")
    if not notes:
        return explanation
    return _replace(explanation, notes=tuple(notes))


def _replace(explanation: NodeExplanation, **changes: Any) -> NodeExplanation:
    values = {name: getattr(explanation, name) for name in NodeExplanation.__slots__}
    return NodeExplanation(**(values | changes))


# ----------------------------------------------------------------- by status
def _pending(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    """Not reached: which incoming edges are still open at its join (an edge settled
    with its source: a pending node has seen every settled source)."""
    settled = {
        edge.key: edge.port in facts.state(edge.source).fired
        for edge in node.parents
        if facts.state(edge.source).status in TERMINAL_NODE_STATUSES
    }
    open_edges = tuple(
        OpenEdge(edge.key, edge.source, edge.port, facts.state(edge.source).status)
        for edge in node.parents
        if edge.key not in settled
    )
    if not node.parents:
        return NodeExplanation(
            node.id, state.status, WaitKind.STARTING, "a root: it starts with the execution"
        )
    fired = sum(1 for value in settled.values() if value)
    needed = max(node.threshold - fired, 0)
    if node.join.value == "all":
        needed = len(open_edges)  # every edge must settle
    described = ", ".join(_describe_edge(edge) for edge in open_edges)
    if node.join.value == "all":
        head = f"waits for {len(open_edges)} of {len(node.parents)} upstream edge(s)"
    else:
        head = (
            f"join {node.join.value}: needs {needed} more fired edge(s) of "
            f"{len(open_edges)} still open"
        )
    return NodeExplanation(
        node.id,
        state.status,
        WaitKind.UPSTREAM,
        f"{head}: {described}",
        open_edges=open_edges,
        join=node.join.value,
        needed=needed,
    )


def _describe_edge(edge: OpenEdge) -> str:
    what = {
        "success": "succeeds",
        "error": "fails",
        "always": "finishes",
    }.get(edge.port, f"takes case {edge.port!r}")
    return f"{edge.edge} (when {edge.source} {what}; it is {edge.source_status})"


def _ready(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    meta = facts.meta
    paused = meta.status == ExecutionStatus.PAUSED
    if node.id in meta.deferred:
        return NodeExplanation(
            node.id,
            state.status,
            WaitKind.PAUSED,
            "its upstream finished while the execution was paused: it starts on resume",
        )
    if node.id not in meta.queue:
        return NodeExplanation(
            node.id, state.status, WaitKind.STARTING, "its join resolved: it is starting"
        )
    position = meta.queue.index(node.id) + 1
    limit = facts.plan.max_concurrency
    if paused:
        return NodeExplanation(
            node.id,
            state.status,
            WaitKind.PAUSED,
            f"queued (position {position} of {len(meta.queue)}): the execution is paused; "
            "it is dispatched on resume",
            since=state.started_at,
            queue_position=position,
        )
    return NodeExplanation(
        node.id,
        state.status,
        WaitKind.CONCURRENCY,
        f"queued (position {position} of {len(meta.queue)}) for a concurrency slot: "
        f"{meta.running} task(s) running, max_concurrency {limit}",
        since=state.started_at,
        queue_position=position,
        limit=limit,
        running=meta.running,
    )


def _running(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    """A task attempt is out: queued for, or claimed by, a worker of its pool."""
    pool = (node.pool or node.type) if node.kind is NodeKind.TASK else None
    consumers = facts.consumers.get(pool, 0) if facts.consumers is not None and pool else None
    deadline = state.timers.get(str(TimerKind.ATTEMPT_TIMEOUT))
    message = (
        f"attempt {state.attempt} dispatched to pool {pool!r}"
        f"{at_moment(state.started_at)}; waiting for a worker to run it and report"
    )
    if consumers == 0:
        message += f" (no worker consumes pool {pool!r})"
    elif consumers is not None:
        message += f" ({consumers} consumer(s) on the pool)"
    if deadline is not None:
        message += f"; the attempt times out at {moment(deadline)}"
    return NodeExplanation(
        node.id,
        state.status,
        WaitKind.WORKER,
        message,
        since=state.started_at,
        pool=pool,
        pool_consumers=consumers,
        attempt=state.attempt,
        deadline=deadline,
        remaining=_remaining(facts, deadline),
    )


def _waiting(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    match state.wait:
        case WaitReason.RETRY:
            return _retry(facts, node, state)
        case WaitReason.DELAY:
            return _delay(facts, node, state)
        case WaitReason.SIGNAL:
            return _signal(facts, node, state)
        case _:
            return _child(facts, node, state)


def _retry(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    until = state.timers.get(str(TimerKind.RETRY))
    error = f" ({state.error.type}: {state.error.message})" if state.error else ""
    return NodeExplanation(
        node.id,
        state.status,
        WaitKind.RETRY,
        f"attempt {state.attempt} of {node.retry.max_attempts} failed{error}; "
        f"retry backoff until {moment(until)}{_in(facts, until)}",
        until=until,
        remaining=_remaining(facts, until),
        attempt=state.attempt,
    )


def _delay(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    until = state.timers.get(str(TimerKind.DELAY))
    return NodeExplanation(
        node.id,
        state.status,
        WaitKind.DELAY,
        f"a delay: its timer fires at {moment(until)}{_in(facts, until)}",
        since=state.started_at,
        until=until,
        remaining=_remaining(facts, until),
    )


def _signal(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    spec = node.spec
    name = spec.signal if isinstance(spec, WaitForSignalNode) else None
    schema = spec.signal_schema if isinstance(spec, WaitForSignalNode) else None
    deadline = state.timers.get(str(TimerKind.SIGNAL_TIMEOUT))
    gives_up = f"; gives up at {moment(deadline)}" if deadline is not None else ""
    return NodeExplanation(
        node.id,
        state.status,
        WaitKind.SIGNAL,
        f"waits for the signal {name!r}{at_moment(state.started_at, 'since')}{gives_up}",
        since=state.started_at,
        signal=name,
        signal_schema=schema,
        deadline=deadline,
        remaining=_remaining(facts, deadline),
    )


def _child(facts: _Facts, node: PlanNode, state: NodeState) -> NodeExplanation:
    deadline = state.timers.get(str(TimerKind.CHILD_TIMEOUT))
    if isinstance(node.spec, SubWorkflowNode) or state.loop is None:
        child = state.children[-1] if state.children else "?"
        message = f"waits for its child execution {child} to finish"
    else:
        loop = state.loop
        total = "?" if loop.total is None else str(loop.total)
        message = f"a loop: {loop.done} of {total} iteration(s) done, {len(loop.running)} running"
    if deadline is not None:
        message += f"; gives up at {moment(deadline)}"
    return NodeExplanation(
        node.id,
        state.status,
        WaitKind.CHILD,
        message,
        since=state.started_at,
        children=state.children,
        deadline=deadline,
        remaining=_remaining(facts, deadline),
    )


# -------------------------------------------------------------------- words
def _remaining(facts: _Facts, at: float | None) -> float | None:
    return None if at is None else round(at - facts.now, 3)


def _in(facts: _Facts, at: float | None) -> str:
    if at is None:
        return ""
    left = at - facts.now
    if left < 0:
        return f" (overdue by {-left:.1f}s)"
    return f" (in {left:.1f}s)"
