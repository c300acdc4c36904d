"""RFC 9457 problem details: every error the API returns, as ``application/problem+json``.

SPANE's exceptions map to statuses here, in one table (:data:`STATUS_OF`); handlers are
installed on the app by :func:`install_handlers`. A problem's ``type`` is a URN naming
the kind of problem (``urn:spane:problem:invalid-workflow``), or ``about:blank`` when the
HTTP status says everything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spane.api.models import ProblemDetails, ProblemItem
from spane.errors import (
    CommandRejectedError,
    InvalidInputError,
    InvalidWorkflowError,
    NotFoundError,
    SpaneError,
    TaskNotFoundError,
)
from spane.schemas.loader import format_location

log = logging.getLogger("spane.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"

STATUS_OF: tuple[tuple[type[SpaneError], int, str], ...] = (
    (InvalidWorkflowError, 422, "invalid-workflow"),
    (InvalidInputError, 422, "invalid-input"),
    (TaskNotFoundError, 409, "task-not-registered"),
    (NotFoundError, 404, "not-found"),
    (CommandRejectedError, 409, "command-rejected"),
)
"""SPANE exception -> HTTP status and problem slug; first match wins (subclasses first)."""


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: these statuses answer problem details."""
    entry: dict[str, Any] = {
        "model": ProblemDetails,
        "content": {PROBLEM_CONTENT_TYPE: {}},
    }
    return {status: entry for status in statuses}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_CONTENT_TYPE


def problem_type(slug: str | None) -> str:
    return f"urn:spane:problem:{slug}" if slug else "about:blank"


def problem(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    instance: str | None = None,
    problems: Sequence[ProblemItem] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    """A problem-details response for ``status``."""
    body = ProblemDetails(
        type=problem_type(slug),
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        problems=list(problems) if problems is not None else None,
    )
    return ProblemResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


def _instance(request: Request) -> str:
    return request.url.path


def _status_of(exc: Exception) -> tuple[int, str]:
    for kind, status, slug in STATUS_OF:
        if isinstance(exc, kind):
            return status, slug
    return 500, "internal"


async def _spane_error(request: Request, exc: Exception) -> ProblemResponse:
    status, slug = _status_of(exc)
    if status == 500:
        log.error("unexpected SPANE error on %s", request.url.path, exc_info=exc)
    items = None
    detail = str(exc)
    if isinstance(exc, InvalidWorkflowError):
        items = [ProblemItem(**p.as_dict()) for p in exc.problems]
        detail = f"the definition has {len(items)} problem(s)"
    return problem(status, detail, slug=slug, instance=_instance(request), problems=items)


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else None
    return problem(exc.status_code, detail, instance=_instance(request), headers=headers)


def _validation_items(errors: Sequence[Any]) -> list[ProblemItem]:
    """``('body', 'input', 0)`` -> ``body.input[0]``; ``('query', 'limit')`` -> ``query.limit``."""
    return [
        ProblemItem(location=format_location(list(e.get("loc", ()))), message=str(e.get("msg")))
        for e in errors
    ]


async def _request_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    items = _validation_items(exc.errors())
    return problem(
        422,
        f"the request has {len(items)} problem(s)",
        slug="invalid-request",
        instance=_instance(request),
        problems=items,
    )


async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return problem(500, "internal error", slug="internal", instance=_instance(request))


def install_handlers(app: FastAPI) -> None:
    """Make every error response of ``app`` a problem-details document."""
    app.add_exception_handler(SpaneError, _spane_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(Exception, _unexpected)
