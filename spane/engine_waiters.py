"""The callers of :meth:`Engine.wait <spane.engine.Engine.wait>`, per execution, woken
by the lifecycle event of the execution's end."""

from __future__ import annotations

import asyncio

from spane.errors import ExecutionNotFoundError
from spane.schemas.events import LifecycleEvent
from spane.schemas.state import TERMINAL_EXECUTION_STATUSES, ExecutionMeta
from spane.state.base import StateStore

__all__ = ["Waiters"]


class Waiters:
    """Futures of the callers waiting for an execution to end."""

    def __init__(self) -> None:
        self._futures: dict[str, list[asyncio.Future[None]]] = {}

    async def wait(
        self, state: StateStore, execution_id: str, timeout: float | None
    ) -> ExecutionMeta:
        """The execution's metadata once its status is terminal (``TimeoutError`` after
        ``timeout`` seconds, :class:`~spane.errors.ExecutionNotFoundError` if unknown)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(execution_id, []).append(future)
        try:
            meta = await state.get_meta(execution_id)
            if meta is None:
                raise ExecutionNotFoundError(f"execution {execution_id!r} not found")
            if meta.status not in TERMINAL_EXECUTION_STATUSES:
                async with asyncio.timeout(timeout):
                    await future
                meta = await state.get_meta(execution_id)
                assert meta is not None
        finally:
            futures = self._futures.get(execution_id, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._futures.pop(execution_id, None)
        return meta

    async def on_event(self, routing_key: str, event: LifecycleEvent) -> None:
        """A lifecycle event handler: wake the waiters of an execution that ended."""
        if event.data.get("status") not in TERMINAL_EXECUTION_STATUSES:
            return
        for future in self._futures.get(event.subject, []):
            if not future.done():
                future.set_result(None)
