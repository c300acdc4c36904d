"""Control commands on an execution: cancel, pause, resume, signal.

A command the orchestrator refuses (e.g. pausing a finished execution, a signal
nobody waits for) is a 409 whose ``detail`` gives its reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from spane.api.bodies import require_json
from spane.api.context import Context
from spane.api.models import CancelRequest, CommandAccepted, SignalRequest
from spane.api.problems import problem_responses

router = APIRouter(
    prefix="/v1/executions/{execution_id}",
    tags=["commands"],
    dependencies=[Depends(require_json)],
)

_ERRORS = problem_responses(404, 409, 413, 415, 422)


@router.post("/cancel", responses=_ERRORS, summary="Cancel an execution")
async def cancel(
    execution_id: str,
    ctx: Context,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> CommandAccepted:
    await ctx.engine.cancel(execution_id, reason=body.reason if body else None)
    return CommandAccepted(execution_id=execution_id, command="cancel")


@router.post("/pause", responses=_ERRORS, summary="Pause an execution")
async def pause(execution_id: str, ctx: Context) -> CommandAccepted:
    await ctx.engine.pause(execution_id)
    return CommandAccepted(execution_id=execution_id, command="pause")


@router.post("/resume", responses=_ERRORS, summary="Resume a paused execution")
async def resume(execution_id: str, ctx: Context) -> CommandAccepted:
    await ctx.engine.resume(execution_id)
    return CommandAccepted(execution_id=execution_id, command="resume")


@router.post("/signals/{name}", responses=_ERRORS, summary="Send a signal")
async def send_signal(
    execution_id: str,
    name: Annotated[str, Path(min_length=1, max_length=256)],
    ctx: Context,
    body: Annotated[SignalRequest | None, Body()] = None,
) -> CommandAccepted:
    """Delivered to every node of the execution waiting for ``name``; refused (409)
    when none waits or the payload fails the node's ``schema``."""
    await ctx.engine.signal(execution_id, name, body.data if body else None)
    return CommandAccepted(execution_id=execution_id, command="signal", signal=name)
