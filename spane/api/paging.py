"""Cursor pagination of executions, newest first.

The cursor is opaque to clients: the position ``(created_at, id)`` of the last item
of the previous page, base64url-encoded JSON. A page holds the items strictly older
than it in the order ``(created_at, id)`` descending, so executions started after the
first page never shift the later ones.

The engine's :meth:`~spane.Engine.list_executions` takes only ``workflow_id`` and
``limit`` (newest first), so a page is cut from a prefix of that list read with a
growing limit; a status filter and the cursor are applied here. Items sharing the
``created_at`` of the oldest item of a full prefix are not trusted to be complete
(the store may order ties differently), so the prefix grows past them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from fastapi import HTTPException

from spane.engine import Engine
from spane.schemas.state import ExecutionMeta, ExecutionStatus

MAX_SCAN = 100_000
"""Most executions read from the store to cut one page."""

Position = tuple[float, str]


def encode_cursor(meta: ExecutionMeta) -> str:
    raw = json.dumps([meta.created_at, meta.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor stands for; a malformed cursor is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, execution_id = json.loads(raw)
        if isinstance(created_at, bool) or not isinstance(execution_id, str):
            raise TypeError("bad cursor fields")
        return float(created_at), execution_id
    except (binascii.Error, ValueError, TypeError) as exc:
        raise HTTPException(422, f"invalid cursor: {cursor!r}") from exc


def _position(meta: ExecutionMeta) -> Position:
    return meta.created_at, meta.id


@dataclass(frozen=True, slots=True)
class PageQuery:
    workflow_id: str | None
    status: ExecutionStatus | None
    limit: int
    cursor: Position | None

    def wanted(self, meta: ExecutionMeta) -> bool:
        if self.status is not None and meta.status != self.status:
            return False
        return self.cursor is None or _position(meta) < self.cursor


def _complete_prefix(metas: list[ExecutionMeta], exhausted: bool) -> list[ExecutionMeta]:
    """Sorted newest first; without the oldest ``created_at`` group unless exhausted."""
    ordered = sorted(metas, key=_position, reverse=True)
    if exhausted or not ordered:
        return ordered
    oldest = min(meta.created_at for meta in ordered)
    return [meta for meta in ordered if meta.created_at > oldest]


async def page_executions(
    engine: Engine, query: PageQuery
) -> tuple[list[ExecutionMeta], str | None]:
    """One page of executions and the cursor of the next (None on the last page)."""
    scan = max(64, 2 * query.limit + 1)
    while True:
        metas = await engine.list_executions(query.workflow_id, limit=scan)
        exhausted = len(metas) < scan or scan >= MAX_SCAN
        selected = [m for m in _complete_prefix(metas, exhausted) if query.wanted(m)]
        if len(selected) > query.limit:
            return selected[: query.limit], encode_cursor(selected[query.limit - 1])
        if exhausted:
            return selected, None
        scan = min(scan * 4, MAX_SCAN)
