"""Inspecting an execution: why each unfinished node waits, and one node in full."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from spane.api.context import Context
from spane.api.problems import problem_responses
from spane.core.explain import WaitKind
from spane.errors import ExecutionNotFoundError
from spane.schemas.state import ExecutionStatus, NodeState, NodeStatus

router = APIRouter(prefix="/v1/executions/{execution_id}", tags=["executions"])


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class OpenEdgeView(_Response):
    edge: str
    source: str
    port: str
    source_status: NodeStatus


class NodeWait(_Response):
    """What one unfinished node waits on: ``kind`` and a sentence, plus the data."""

    node_id: str
    status: NodeStatus
    kind: WaitKind
    message: str
    since: float | None = None
    until: float | None = None
    remaining: float | None = None
    open_edges: list[OpenEdgeView] = []
    join: str | None = None
    needed: int | None = None
    signal: str | None = None
    signal_schema: dict[str, Any] | None = None
    pool: str | None = None
    pool_consumers: int | None = None
    """Consumers of the pool, when this process knows them (embedded engine)."""
    attempt: int | None = None
    queue_position: int | None = None
    limit: int | None = None
    running: int | None = None
    children: list[str] = []
    deadline: float | None = None
    notes: list[str] = []


class ExecutionExplanation(_Response):
    execution_id: str
    workflow_id: str
    version: int
    status: ExecutionStatus
    message: str
    now: float
    nodes: list[NodeWait]


class NodeDetail(_Response):
    """A node's whole state: input, output, error, attempts, timings, armed timers."""

    execution_id: str
    node_id: str
    state: NodeState


@router.get(
    "/explain",
    responses=problem_responses(404),
    summary="Why is it waiting? Every unfinished node and what it waits on",
)
async def explain_execution(execution_id: str, ctx: Context) -> ExecutionExplanation:
    """For each node that has not finished: upstream edges still open at its join, a
    timer (delay, retry backoff), a signal, a concurrency or execution slot, a worker
    of its pool, a child execution, or a paused execution."""
    explanation = await ctx.engine.explain(execution_id)
    return ExecutionExplanation.model_validate(explanation.to_dict())


@router.get(
    "/nodes/{node_id}",
    responses=problem_responses(404),
    summary="One node of an execution in full",
)
async def get_node(execution_id: str, node_id: str, ctx: Context) -> NodeDetail:
    """Its input, output, error (with details), attempt, timings, armed timers."""
    snapshot = await ctx.engine.describe(execution_id)
    state = snapshot.nodes.get(node_id)
    if state is None:
        meta = snapshot.meta
        plan = await ctx.engine.plans.get(meta.workflow_id, meta.version, meta.body)
        if node_id not in plan.nodes:
            raise ExecutionNotFoundError(f"execution {execution_id!r} has no node {node_id!r}")
        state = NodeState()
    return NodeDetail(execution_id=execution_id, node_id=node_id, state=state)
