"""A worker's slots: at most ``concurrency`` tasks run at once, and a stop hands back
the deliveries still waiting for one."""

from __future__ import annotations

import asyncio

from spane.errors import SpaneError


class WorkerStoppingError(SpaneError, RuntimeError):
    """Raised into the bus so the rest of a batch is handed back when the worker stops."""


class Slots:
    """``concurrency`` slots; :meth:`take` waits for one unless the worker stops."""

    def __init__(self, concurrency: int) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._stop_requested = asyncio.Event()
        self.stopping = False

    def stop(self) -> None:
        """No more slots: a :meth:`take` waiting now or later raises."""
        self.stopping = True
        self._stop_requested.set()

    def free(self) -> bool:
        """Whether :meth:`take` would take a slot at once (and cannot raise)."""
        return not self._semaphore.locked() and not self.stopping

    def release(self) -> None:
        self._semaphore.release()

    async def take(self, worker_id: str) -> None:
        """Wait for a free slot; a stop while waiting hands the batch back."""
        if self.free():
            await self._semaphore.acquire()  # free now: no waiting machinery needed
            return
        slot = asyncio.ensure_future(self._semaphore.acquire())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        await asyncio.wait({slot, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if self.stopping:
            if slot.done() and not slot.cancelled():
                self._semaphore.release()
            slot.cancel()
            raise WorkerStoppingError(f"worker {worker_id} is stopping")
