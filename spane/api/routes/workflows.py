"""``/v1/workflows``: register (JSON or YAML), list, read a version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from spane.api.bodies import YAML_TYPES, decode_json, is_json, media_type, unsupported
from spane.api.context import Context
from spane.api.models import (
    WorkflowDetail,
    WorkflowList,
    WorkflowRegistered,
    WorkflowSummary,
)
from spane.api.problems import problem_responses
from spane.schemas.loader import parse_text, spec_from_data
from spane.schemas.workflow import WorkflowSpec

router = APIRouter(prefix="/v1/workflows", tags=["workflows"])

_SPEC_REF = {"$ref": "#/components/schemas/WorkflowSpec"}
_REGISTER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _SPEC_REF},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _parse(kind: str | None, body: bytes) -> WorkflowSpec:
    if is_json(kind):
        return spec_from_data(decode_json(body))
    if kind in YAML_TYPES:
        return spec_from_data(parse_text(body.decode("utf-8", errors="replace"), "body"))
    raise unsupported(kind, "application/json or application/yaml")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_REGISTER_BODY,
    responses=problem_responses(413, 415, 422),
    summary="Register a workflow definition",
)
async def register_workflow(request: Request, ctx: Context) -> WorkflowRegistered:
    """Validate and store a definition. Identical content keeps its version; changed
    content gets version + 1. A bad definition is a 422 listing every problem."""
    spec = _parse(media_type(request), await request.body())
    record = await ctx.engine.register(spec)
    return WorkflowRegistered(
        id=record.workflow_id, version=record.version, checksum=record.checksum
    )


@router.get("", summary="List workflows (latest version of each)")
async def list_workflows(ctx: Context) -> WorkflowList:
    records = await ctx.engine.list_workflows()
    return WorkflowList(items=[WorkflowSummary.of(r) for r in records])


@router.get("/{workflow_id}", responses=problem_responses(404), summary="The latest version")
async def get_workflow(workflow_id: str, ctx: Context) -> WorkflowDetail:
    return WorkflowDetail.of(await ctx.engine.get_workflow(workflow_id))


@router.get(
    "/{workflow_id}/versions/{version}", responses=problem_responses(404), summary="One version"
)
async def get_workflow_version(workflow_id: str, version: int, ctx: Context) -> WorkflowDetail:
    return WorkflowDetail.of(await ctx.engine.get_workflow(workflow_id, version))
