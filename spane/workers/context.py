"""What a running task can see and do: :class:`TaskContext`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

HeartbeatSender = Callable[[Any], Coroutine[Any, Any, None]]


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
    pool: str = ""
    """The worker pool (queue) the attempt came from."""
    worker_id: str = ""
    """The worker running it (also the holder of its claim)."""
    _heartbeat: HeartbeatSender | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def heartbeat(self, details: Any = None) -> Awaitable[None]:
        """Tell the orchestrator this attempt is alive (resets its per-attempt timeout).

        ``await ctx.heartbeat()`` in an ``async def`` task; a plain ``def`` task (run in
        a thread) just calls ``ctx.heartbeat()``, which returns once it is sent.
        """
        if self._heartbeat is None:
            return _DONE
        sent = self._heartbeat(details)
        loop = self._loop
        if loop is None or _running_loop() is loop:
            return sent
        asyncio.run_coroutine_threadsafe(sent, loop).result(HEARTBEAT_SEND_TIMEOUT)
        return _DONE


HEARTBEAT_SEND_TIMEOUT = 30.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Done:
    """An awaitable that is already complete."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_DONE = _Done()
