"""``GET /v1/workflows/{id}/graph``: a workflow's processed plan as a graph to draw.

Nodes with their type, kind and join; edges with their ports; the branch and
convergence points, the parallel groups, the roots and leaves; the plan in words
(:func:`~spane.compiler.describe.describe_plan`) and the definition as YAML.
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from spane.api.context import Context
from spane.api.problems import problem_responses
from spane.compiler.describe import describe_plan
from spane.compiler.plan import Plan, PlanNode
from spane.schemas.workflow import WaitForSignalNode

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class GraphNode(_Response):
    id: str
    type: str
    kind: str
    name: str | None = None
    join: str
    threshold: int
    level: int
    ports: list[str]
    guard: str | None = None
    signal: str | None = None
    signal_schema: dict[str, Any] | None = None
    timeout: float | None = None
    max_attempts: int = 1
    has_body: bool = False


class GraphEdge(_Response):
    source: str
    port: str
    target: str


class WorkflowGraph(_Response):
    workflow_id: str
    version: int
    name: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    roots: list[str]
    leaves: list[str]
    branch_points: list[str]
    convergence_points: list[str]
    groups: list[list[str]]
    max_concurrency: int | None = None
    max_executions: int | None = None
    description_text: str
    """The plan in words (what ``spane graph`` prints)."""
    definition_yaml: str


def _node(node: PlanNode) -> GraphNode:
    spec = node.spec
    signal = spec if isinstance(spec, WaitForSignalNode) else None
    return GraphNode(
        id=node.id,
        type=node.type,
        kind=str(node.kind),
        name=getattr(spec, "name", None),
        join=str(node.join),
        threshold=node.threshold,
        level=node.level,
        ports=sorted(node.ports),
        guard=node.guard.source if node.guard is not None else None,
        signal=signal.signal if signal else None,
        signal_schema=signal.signal_schema if signal else None,
        timeout=node.timeout,
        max_attempts=node.retry.max_attempts,
        has_body=node.body is not None,
    )


def graph_of(plan: Plan) -> WorkflowGraph:
    """The drawable graph of a compiled plan."""
    spec = plan.spec
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    return WorkflowGraph(
        workflow_id=plan.workflow_id,
        version=plan.version,
        name=spec.name,
        description=spec.description,
        input_schema=dict(plan.input_schema) if plan.input_schema is not None else None,
        nodes=[_node(plan.node(node_id)) for node_id in plan.order],
        edges=[
            GraphEdge(source=edge.source, port=edge.port, target=edge.target)
            for node_id in plan.order
            for edge in plan.node(node_id).children
        ],
        roots=list(plan.roots),
        leaves=list(plan.leaves),
        branch_points=list(plan.branch_points),
        convergence_points=list(plan.convergence_points),
        groups=[list(group) for group in plan.groups],
        max_concurrency=plan.max_concurrency,
        max_executions=plan.max_executions,
        description_text=describe_plan(plan),
        definition_yaml=yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True),
    )


@router.get(
    "/{workflow_id}/graph",
    responses=problem_responses(404),
    summary="The workflow's plan as a graph (latest version unless ?version=)",
)
async def workflow_graph(
    workflow_id: str,
    ctx: Context,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> WorkflowGraph:
    return graph_of(await ctx.engine.plans.get(workflow_id, version))
