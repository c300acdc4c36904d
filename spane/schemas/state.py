"""Execution and node state as persisted by every :class:`~spane.state.StateStore`.

Times are UNIX timestamps (float seconds); the pure core receives ``now`` as an
argument and never reads a clock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class NodeStatus(StrEnum):
    PENDING = "pending"  # not reached yet: its join has not resolved
    READY = "ready"  # join resolved, queued for capacity (max_concurrency) or resume
    RUNNING = "running"  # an attempt is out with a worker
    WAITING = "waiting"  # waiting on a timer, a signal, a child execution or a retry delay
    SUCCEEDED = "succeeded"  # finished with an output
    FAILED = "failed"  # failed for good (after its retries)
    SKIPPED = "skipped"  # its join resolved without a live edge, or its guard was false
    CANCELLED = "cancelled"  # stopped by a cancel, timeout or another node's failure


TERMINAL_NODE_STATUSES = frozenset(
    {NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
)


class ExecutionStatus(StrEnum):
    PENDING = "pending"  # accepted, waiting for a max_executions slot
    RUNNING = "running"  # nodes are being dispatched
    PAUSED = "paused"  # nothing new is dispatched; running tasks finish
    SUCCEEDED = "succeeded"  # every node settled; output computed
    FAILED = "failed"  # an unhandled node failure (or output error)
    CANCELLED = "cancelled"  # cancelled by a user or a parent
    TIMED_OUT = "timed_out"  # the execution timeout elapsed


TERMINAL_EXECUTION_STATUSES = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.TIMED_OUT,
    }
)


class WaitReason(StrEnum):
    RETRY = "retry"  # backoff timer before the next attempt
    DELAY = "delay"  # a delay node's timer
    SIGNAL = "signal"  # a wait_for_signal node
    CHILD = "child"  # a child execution (sub-workflow, loop iteration)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorInfo(_Record):
    """An error as recorded and reported: ``{type, message, node_id, attempt, details}``."""

    type: str
    message: str
    node_id: str | None = None
    attempt: int | None = None
    details: Any = None


class TimerKind(StrEnum):
    RETRY = "retry"  # start the next attempt
    ATTEMPT_TIMEOUT = "attempt_timeout"  # the running attempt took too long
    EXECUTION_TIMEOUT = "execution_timeout"  # the whole execution took too long
    DELAY = "delay"  # a delay node is due
    SIGNAL_TIMEOUT = "signal_timeout"  # a wait_for_signal node gave up
    CHILD_TIMEOUT = "child_timeout"  # a sub-workflow node gave up on its child
    LIVENESS = "liveness"  # check that the worker running an attempt is alive


class Timer(_Record):
    """A durable timer; ``id`` is deterministic so re-scheduling replaces it."""

    id: str
    execution_id: str
    kind: TimerKind
    fire_at: float
    node_id: str | None = None
    attempt: int = 0


class ParentLink(_Record):
    """Where a child execution reports back to."""

    execution_id: str
    node_id: str
    iteration: int | None = None


class LoopState(_Record):
    """Progress of a for_each / while / repeat node.

    Constant in size for a for_each: its items and iteration results are not here but
    in the execution's loop data, one field each (``ExecutionView.loop_values``), so an
    iteration's event reads and rewrites O(1) bytes whatever the loop's length."""

    total: int | None = None
    """Iterations to run (None for while: decided by the condition)."""
    next: int = 0
    """Index of the next iteration to start."""
    running: tuple[int, ...] = ()
    results: list[Any] = Field(default_factory=list)
    """while / repeat: each iteration's result (their condition and next iteration see
    them). A for_each keeps its results in the loop data."""
    done: int = 0
    """Iterations that completed."""
    stopping: bool = False
    """A break was seen: start nothing new."""


class NodeState(_Record):
    status: NodeStatus = NodeStatus.PENDING
    attempt: int = 0
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    fired: tuple[str, ...] = ()
    """Ports this node fired when it settled."""
    edges: dict[str, bool] = Field(default_factory=dict)
    """``any`` / ``at_least`` joins: the incoming edges that fired before the join
    resolved (``source.port`` -> True; at most its threshold). An ``all`` join records
    none: once it resolved every edge settled, and an edge fired if its source's
    ``fired`` holds its port."""
    joined: int = Field(default=0, exclude_if=lambda v: v == 0)
    """Incoming edges that settled before the join resolved (counted, so a join over n
    parents costs O(1) per parent, not a copy of n edges)."""
    joined_fired: int = Field(default=0, exclude_if=lambda v: v == 0)
    """Those of them that fired."""
    wait: WaitReason | None = None
    timers: dict[str, float] = Field(default_factory=dict)
    """Armed timers of this node (kind -> fire time): a firing that does not match is stale."""
    lost: int = 0
    """Attempts lost with their worker (re-run without using the retry budget)."""
    started_at: float | None = None
    finished_at: float | None = None
    children: tuple[str, ...] = ()
    """Child execution ids of a sub-workflow node, one per attempt."""
    loop: LoopState | None = None
    attempt_base: int = Field(default=0, exclude_if=lambda v: v == 0)
    """Attempts made before the execution's last retry: the retry budget counts from
    here (attempt numbers go on, so task, timer and child ids never repeat)."""


class ExecutionMeta(_Record):
    id: str
    workflow_id: str
    version: int
    status: ExecutionStatus = ExecutionStatus.RUNNING
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    finished_at: float | None = None
    deadline: float | None = None
    parent: ParentLink | None = None
    depth: int = 0
    priority: int = 0
    idempotency_key: str | None = None
    pauses: int = 0
    """How many times it was paused (numbers the paused/resumed events)."""
    failing: bool = False
    """An unhandled failure happened: only finally branches may still start."""
    unsettled: int = 0
    """Nodes not yet in a terminal status."""
    running: int = 0
    """Task attempts out with workers (bounded by max_concurrency)."""
    active: tuple[str, ...] = ()
    """Nodes that are RUNNING or WAITING."""
    queue: tuple[str, ...] = ()
    """READY nodes waiting for capacity or for resume, in dispatch order."""
    deferred: tuple[str, ...] = ()
    """Nodes whose join fired while paused: activated on resume."""
    held: tuple[Timer, ...] = ()
    """Timers that fired while paused; applied on resume."""
    finally_nodes: tuple[str, ...] = ()
    """Nodes started while failing (finally branches): their successors may run too."""
    signals: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Signal name -> nodes waiting on it."""
    context: dict[str, Any] = Field(default_factory=dict)
    """Extra expression context of a loop iteration (``item``, ``index``)."""
    body: str | None = None
    """Loop iterations: path of the loop node(s) whose inline body this execution runs."""
    loop_control: Literal["break", "continue"] | None = None
    """``break`` / ``continue`` when a loop body ended that way."""
    traceparent: str | None = None
    retries: int = Field(default=0, exclude_if=lambda v: v == 0)
    """How many times it was retried (numbers the retried event and the events after)."""
    replay_of: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The execution this one replays (``POST /v1/executions/{id}/replay``)."""
