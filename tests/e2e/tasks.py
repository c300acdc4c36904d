"""Task functions of the end-to-end workflows (``spane dev --import tests.e2e.tasks``)."""

from __future__ import annotations

import asyncio
from typing import Any

import spane


@spane.task("e2e.step")
async def step(data: Any) -> Any:
    await asyncio.sleep(0.4)  # long enough to be seen running
    return data


@spane.task("e2e.total")
async def total(data: Any) -> dict[str, Any]:
    await asyncio.sleep(0.2)
    values = data.values() if isinstance(data, dict) else [data]
    return {"parts": len(list(values))}
