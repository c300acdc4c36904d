"""Dead letters: messages no consumer could process, kept by the orchestrators in the
definition store (:mod:`spane.orchestrator.dead_letters`). List them (newest first, by
cursor), read one with its body and headers, redrive one (re-publish it where it was
first sent, then forget it) or drop it.

A body that is UTF-8 text is given as text (``body_encoding: "utf-8"``), any other as
base64 (``"base64"``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict

from spane.api.context import Context
from spane.api.problems import problem_responses

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])

EntryId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-.:]+$")]


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class DeadLetterSummary(_Response):
    id: str
    dead_at: float
    """When it was dead-lettered (UNIX seconds)."""
    reason: str
    queue: str
    """The queue it died in."""
    exchange: str
    """Where it was published: a redrive sends it there again."""
    routing_key: str
    message_id: str | None = None
    type: str | None = None
    count: int = 1

    @classmethod
    def of(cls, entry: dict[str, Any]) -> DeadLetterSummary:
        return cls.model_validate({k: entry.get(k) for k in cls.model_fields if k in entry})


class DeadLetterDetail(DeadLetterSummary):
    content_type: str | None = None
    content_encoding: str | None = None
    correlation_id: str | None = None
    app_id: str | None = None
    priority: int | None = None
    headers: dict[str, Any] = {}
    body: str
    body_encoding: str
    """``utf-8`` (the body as text) or ``base64``."""


class DeadLetterPage(_Response):
    items: list[DeadLetterSummary]
    next_cursor: str | None = None


class Redriven(_Response):
    id: str
    exchange: str
    routing_key: str
    message_id: str | None = None


def encode_cursor(entry: dict[str, Any]) -> str:
    raw = json.dumps([entry.get("dead_at") or 0.0, entry.get("id") or ""], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor stands for; a malformed cursor is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        dead_at, entry_id = json.loads(raw)
        if isinstance(dead_at, bool) or not isinstance(entry_id, str):
            raise TypeError("bad cursor fields")
        return float(dead_at), entry_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise HTTPException(422, f"invalid cursor: {cursor!r}") from exc


@router.get("", responses=problem_responses(422), summary="List dead letters, newest first")
async def list_dead_letters(
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=1024, pattern=r"^[A-Za-z0-9_\-]+$")
    ] = None,
) -> DeadLetterPage:
    """Cursor pagination: pass ``next_cursor`` of a page as ``cursor`` for the next one."""
    before = decode_cursor(cursor) if cursor is not None else None
    entries = await ctx.engine.list_dead_letters(limit + 1, before=before)
    page = entries[:limit]
    next_cursor = encode_cursor(page[-1]) if len(entries) > limit else None
    return DeadLetterPage(items=[DeadLetterSummary.of(e) for e in page], next_cursor=next_cursor)


@router.get("/{entry_id}", responses=problem_responses(404, 422), summary="One dead letter")
async def get_dead_letter(entry_id: EntryId, ctx: Context) -> DeadLetterDetail:
    """With its body, headers and message properties."""
    entry = await ctx.engine.get_dead_letter(entry_id)
    return DeadLetterDetail.model_validate(
        {k: entry.get(k) for k in DeadLetterDetail.model_fields if entry.get(k) is not None}
    )


@router.post(
    "/{entry_id}/redrive",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404, 409, 422),
    summary="Re-publish a dead letter, then forget it",
)
async def redrive_dead_letter(entry_id: EntryId, ctx: Context) -> Redriven:
    """Publishes the original body and properties to the exchange and routing key it was
    first sent to (confirmed by the broker), then deletes the entry. 409 when it cannot
    be published there (no queue takes it, or its exchange is not SPANE's)."""
    entry = await ctx.engine.redrive_dead_letter(entry_id)
    return Redriven(
        id=entry.id,
        exchange=entry.exchange,
        routing_key=entry.routing_key,
        message_id=entry.message_id,
    )


@router.delete(
    "/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 422),
    summary="Drop a dead letter",
)
async def drop_dead_letter(entry_id: EntryId, ctx: Context) -> Response:
    await ctx.engine.drop_dead_letter(entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
