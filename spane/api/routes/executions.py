"""Executions: start one, read one (node by node), list them, read their events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from spane.api.bodies import require_json
from spane.api.context import Context
from spane.api.models import (
    ExecutionDetail,
    ExecutionEvents,
    ExecutionPage,
    ExecutionSummary,
    StartRequest,
    StartResponse,
)
from spane.api.paging import PageQuery, decode_cursor, page_executions
from spane.api.problems import problem_responses
from spane.schemas.state import ExecutionStatus

router = APIRouter(tags=["executions"])

_ERRORS = problem_responses(404, 409, 413, 415, 422)


@router.post(
    "/v1/workflows/{workflow_id}/executions",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_json)],
    responses=_ERRORS,
    summary="Start an execution",
)
async def start_execution(workflow_id: str, body: StartRequest, ctx: Context) -> StartResponse:
    """Returns once the start is durable. With an ``idempotency_key`` already used for
    this workflow, returns the execution that key started."""
    execution_id = await ctx.engine.start(
        workflow_id,
        body.input,
        version=body.version,
        idempotency_key=body.idempotency_key,
        priority=body.priority,
    )
    return StartResponse(execution_id=execution_id)


@router.get(
    "/v1/executions", responses=problem_responses(422), summary="List executions, newest first"
)
async def list_executions(
    ctx: Context,
    workflow_id: Annotated[str | None, Query(max_length=128)] = None,
    status: ExecutionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=1024, pattern=r"^[A-Za-z0-9_\-]+$")
    ] = None,
) -> ExecutionPage:
    """Cursor pagination: pass ``next_cursor`` of a page as ``cursor`` for the next one."""
    query = PageQuery(
        workflow_id=workflow_id,
        status=status,
        limit=limit,
        cursor=decode_cursor(cursor) if cursor is not None else None,
    )
    metas, next_cursor = await page_executions(ctx.engine, query)
    return ExecutionPage(items=[ExecutionSummary.of(m) for m in metas], next_cursor=next_cursor)


@router.get(
    "/v1/executions/{execution_id}", responses=problem_responses(404), summary="One execution"
)
async def get_execution(execution_id: str, ctx: Context) -> ExecutionDetail:
    """Status, input, output, error and every node with its status, attempt, timings
    and output or error."""
    return ExecutionDetail.of_snapshot(await ctx.engine.describe(execution_id))


@router.get(
    "/v1/executions/{execution_id}/events",
    responses=problem_responses(404),
    summary="The execution's lifecycle events",
)
async def execution_events(execution_id: str, ctx: Context) -> ExecutionEvents:
    """The lifecycle events (CloudEvents) of this execution seen by this API process,
    oldest first; bounded per execution and not kept across restarts."""
    snapshot = await ctx.engine.describe(execution_id)
    events, dropped = ctx.hub.history(execution_id)
    started = ctx.hub.started_at
    before_us = started is None or snapshot.meta.created_at < started
    return ExecutionEvents(execution_id=execution_id, events=events, truncated=dropped or before_us)
