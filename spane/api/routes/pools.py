"""``/v1/pools``: every worker pool's queue depth and consumers."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from spane.api.context import Context

router = APIRouter(prefix="/v1/pools", tags=["pools"])


class PoolView(BaseModel):
    """One pool: the tasks waiting in its queue and the worker runtimes consuming it."""

    model_config = ConfigDict(frozen=True)

    pool: str
    messages: int
    """Ready messages: tasks no worker has taken yet (prefetched ones are not counted)."""
    consumers: int


class PoolList(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[PoolView]


@router.get("", summary="Worker pools: waiting tasks and consumers")
async def list_pools(ctx: Context) -> PoolList:
    """``function``, ``http``, the custom task types this process knows, and every pool the
    registered workflows (latest versions) name, by name. A pool whose queue does not
    exist yet has 0 messages and 0 consumers."""
    stats = await ctx.engine.pool_stats()
    return PoolList(
        items=[
            PoolView(pool=pool, messages=messages, consumers=consumers)
            for pool, (messages, consumers) in sorted(stats.items())
        ]
    )
