"""Task functions of the end-to-end workflows (``spane dev --import tests.e2e.tasks``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
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


@spane.task("e2e.flaky")
async def flaky(data: Any) -> Any:
    """Fails until the file named by ``data["flag"]`` exists: the test creates it to
    let a retry succeed (the server runs in another process)."""
    await asyncio.sleep(0.2)
    flag = data.get("flag") if isinstance(data, dict) else None
    if not flag or not await asyncio.to_thread(Path(str(flag)).exists):
        raise RuntimeError(f"the flag {flag} is not set yet")
    return {"flag": "found", "input": data}
