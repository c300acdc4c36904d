"""Request and response bodies of the REST API (shared types come from ``spane.schemas``).

Times are UNIX timestamps in seconds (float), as stored by the engine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spane.engine import ExecutionSnapshot
from spane.schemas.events import LifecycleEvent
from spane.schemas.state import (
    ErrorInfo,
    ExecutionMeta,
    ExecutionStatus,
    NodeState,
    NodeStatus,
    ParentLink,
    WaitReason,
)
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import WorkflowRecord


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# ----------------------------------------------------------------- problems
class ProblemItem(_Response):
    """One problem: where it is (dotted path) and what is wrong."""

    location: str
    message: str
    hint: str | None = None


class ProblemDetails(_Response):
    """RFC 9457 problem details; ``problems`` lists every problem of a 422."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    problems: list[ProblemItem] | None = None


# ---------------------------------------------------------------- workflows
class WorkflowRegistered(_Response):
    id: str
    version: int
    checksum: str


class WorkflowSummary(_Response):
    id: str
    version: int
    name: str | None = None
    description: str | None = None
    checksum: str
    created_at: float

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowSummary:
        return cls(
            id=record.workflow_id,
            version=record.version,
            name=record.spec.name,
            description=record.spec.description,
            checksum=record.checksum,
            created_at=record.created_at,
        )


class WorkflowList(_Response):
    items: list[WorkflowSummary]


class WorkflowDetail(WorkflowSummary):
    spec: WorkflowSpec

    @classmethod
    def of(cls, record: WorkflowRecord) -> WorkflowDetail:
        return cls(**WorkflowSummary.of(record).model_dump(), spec=record.spec)


# --------------------------------------------------------------- executions
class StartRequest(_Request):
    input: Any = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    """Starting again with the same key returns the execution it started first."""
    version: int | None = Field(default=None, ge=1)
    """Run this version of the workflow instead of the latest."""
    priority: int = Field(default=0, ge=0, le=255)


class StartResponse(_Response):
    execution_id: str


class NodeView(_Response):
    id: str
    status: NodeStatus
    attempt: int
    started_at: float | None = None
    finished_at: float | None = None
    duration: float | None = None
    wait: WaitReason | None = None
    output: Any = None
    error: ErrorInfo | None = None

    @classmethod
    def of(cls, node_id: str, state: NodeState) -> NodeView:
        duration = None
        if state.started_at is not None and state.finished_at is not None:
            duration = state.finished_at - state.started_at
        return cls(
            id=node_id,
            status=state.status,
            attempt=state.attempt,
            started_at=state.started_at,
            finished_at=state.finished_at,
            duration=duration,
            wait=state.wait,
            output=state.output,
            error=state.error,
        )


class ExecutionSummary(_Response):
    id: str
    workflow_id: str
    version: int
    status: ExecutionStatus
    created_at: float
    finished_at: float | None = None
    parent: ParentLink | None = None
    replay_of: str | None = None
    """The execution this one replays (``POST /v1/executions/{id}/replay``)."""
    retries: int = 0
    """How many times it was retried (``POST /v1/executions/{id}/retry``)."""

    @classmethod
    def of(cls, meta: ExecutionMeta) -> ExecutionSummary:
        return cls(
            id=meta.id,
            workflow_id=meta.workflow_id,
            version=meta.version,
            status=meta.status,
            created_at=meta.created_at,
            finished_at=meta.finished_at,
            parent=meta.parent,
            replay_of=meta.replay_of,
            retries=meta.retries,
        )


class ExecutionDetail(ExecutionSummary):
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    nodes: list[NodeView]

    @classmethod
    def of_snapshot(cls, snapshot: ExecutionSnapshot) -> ExecutionDetail:
        meta = snapshot.meta
        return cls(
            **ExecutionSummary.of(meta).model_dump(),
            input=meta.input,
            output=meta.output,
            error=meta.error,
            vars=meta.vars,
            nodes=[NodeView.of(node_id, state) for node_id, state in snapshot.nodes.items()],
        )


class ExecutionPage(_Response):
    items: list[ExecutionSummary]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next (older) page; absent on the last page."""


class ExecutionEvents(_Response):
    execution_id: str
    events: list[LifecycleEvent]
    truncated: bool = False
    """Older events were dropped (the history per execution is bounded), or the
    execution began before this API process subscribed to events."""


# ----------------------------------------------------------------- commands
class SignalRequest(_Request):
    data: Any = None


class CancelRequest(_Request):
    reason: str | None = Field(default=None, max_length=1000)


class CommandAccepted(_Response):
    execution_id: str
    command: Literal["cancel", "pause", "resume", "signal"]
    signal: str | None = None


# ------------------------------------------------------------------- health
class Health(_Response):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str | None] = Field(default_factory=dict)
    """Backend -> null when usable, else why not."""
