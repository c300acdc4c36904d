"""Recovery of executions: retry one that failed, replay one from a chosen node.

- ``POST /v1/executions/{id}/retry``: the same execution runs again from the nodes that
  did not succeed (succeeded ones keep their outputs). Only a failed, timed-out or
  cancelled top-level execution can be retried; anything else — and an execution whose
  runtime state expired — is a 409 with the reason.
- ``POST /v1/executions/{id}/replay`` ``{from_node, input?}``: a new execution (201)
  linked to the old one (``replay_of``) that runs ``from_node`` and everything downstream
  of it and reuses the other nodes' outputs. An unknown ``from_node`` is a 422 naming the
  workflow's nodes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from spane.api.bodies import require_json
from spane.api.context import Context
from spane.api.problems import problem_responses

router = APIRouter(
    prefix="/v1/executions/{execution_id}",
    tags=["recovery"],
    dependencies=[Depends(require_json)],
)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_node: str = Field(min_length=1, max_length=256)
    """The node to run again, with everything downstream of it."""
    input: Any = None
    """The new execution's input; absent: the replayed execution's input."""


class RetryAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)

    execution_id: str
    command: Literal["retry"] = "retry"


class ReplayStarted(BaseModel):
    model_config = ConfigDict(frozen=True)

    execution_id: str
    """The new execution."""
    replay_of: str
    from_node: str


@router.post(
    "/retry",
    responses=problem_responses(404, 409, 415),
    summary="Retry a failed execution from its failed nodes",
)
async def retry(execution_id: str, ctx: Context) -> RetryAccepted:
    """The execution goes back to running: nodes that failed (and those cancelled,
    skipped or not started because of it) run again; succeeded ones are kept."""
    await ctx.engine.retry(execution_id)
    return RetryAccepted(execution_id=execution_id)


@router.post(
    "/replay",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(404, 409, 413, 415, 422),
    summary="Start a new execution from one node of an old one",
)
async def replay(
    execution_id: str, body: Annotated[ReplayRequest, Body()], ctx: Context
) -> ReplayStarted:
    """Runs the same workflow version again from ``from_node``: the other nodes'
    outcomes are taken over from the old execution, not run again."""
    if "input" in body.model_fields_set:
        new_id = await ctx.engine.replay(execution_id, body.from_node, body.input)
    else:
        new_id = await ctx.engine.replay(execution_id, body.from_node)
    return ReplayStarted(execution_id=new_id, replay_of=execution_id, from_node=body.from_node)
