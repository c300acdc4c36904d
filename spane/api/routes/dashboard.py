"""The dashboard: the single-page app built from ``ui/`` into ``spane/api/static/``.

``/`` serves its ``index.html``, ``/assets/...`` its bundles. Any other ``GET`` that
is not an API path (``/v1/...``, ``/docs``, ``/openapi.json``) and that a browser
navigates to (``Accept: text/html``) gets ``index.html`` too (SPA fallback); the rest
stays a 404 problem. Without a built dashboard, ``/`` is a 404 saying how to build it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.exceptions import HTTPException

STATIC = Path(__file__).resolve().parent.parent / "static"
_API_PREFIXES = ("/v1/", "/v1", "/docs", "/openapi.json", "/redoc", "/livez", "/readyz")
_CACHE_FOREVER = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


def _index() -> FileResponse:
    index = STATIC / "index.html"
    if not index.is_file():
        raise HTTPException(404, "the dashboard is not built: run ui/build.sh")
    return FileResponse(index, headers={"Cache-Control": "no-cache"})


@router.get("/")
async def dashboard() -> FileResponse:
    return _index()


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    path = (STATIC / "assets" / name).resolve()
    if path.parent != (STATIC / "assets").resolve() or not path.is_file():
        raise HTTPException(404, f"no asset {name!r}")
    return FileResponse(path, headers={"Cache-Control": _CACHE_FOREVER})


@router.get("/{path:path}")
async def spa_fallback(path: str, request: Request) -> FileResponse:
    url_path = "/" + path
    is_api = url_path.startswith(_API_PREFIXES)
    if is_api or "text/html" not in request.headers.get("accept", ""):
        raise HTTPException(404, "Not Found")
    return _index()
