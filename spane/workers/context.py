"""What a running task can see and do: :class:`TaskContext`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

HeartbeatSender = Callable[[Any], Awaitable[None]]


@dataclass(slots=True)
class TaskContext:
    """Passed to a task that asks for it (a parameter named ``ctx`` or typed ``TaskContext``).

    ``idempotency_key`` is the task id (``<execution>:<node>:<attempt>``): hand it to the
    systems you call so that a re-run after a worker crash does not act twice.
    ``cancelled`` is set when the node is cancelled; long tasks should check it.
    """

    execution_id: str
    workflow_id: str
    node_id: str
    attempt: int
    idempotency_key: str
    deadline: float | None
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    logger: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("spane.task"), {})
    )
    _heartbeat: HeartbeatSender | None = None

    async def heartbeat(self, details: Any = None) -> None:
        """Tell the orchestrator this attempt is alive (resets its per-attempt timeout)."""
        if self._heartbeat is not None:
            await self._heartbeat(details)
