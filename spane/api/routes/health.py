"""Probes: ``/livez`` (the process answers), ``/readyz`` (the backends are usable)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from spane.api.context import Context
from spane.api.models import Health

router = APIRouter(tags=["health"])


@router.get("/livez", summary="Liveness")
async def livez() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, responses={503: {"model": Health}}, summary="Readiness"
)
async def readyz(ctx: Context) -> JSONResponse:
    checks = await ctx.engine.check_backends()
    ok = all(reason is None for reason in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
