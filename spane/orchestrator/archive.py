"""Copying finished executions to the archive (the definition store), off the event path.

Batched: one state read and one archive write for up to ``ARCHIVE_BATCH`` executions;
a batch that fails is retried one by one so one bad record costs only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from spane.state.base import DefinitionStore, StateStore

log = logging.getLogger("spane.orchestrator")

ARCHIVE_DRAIN = 5.0
"""Seconds a stopping orchestrator lets the archive catch up."""
ARCHIVE_BATCH = 64


class Archiver:
    def __init__(self, state: StateStore, definitions: DefinitionStore) -> None:
        self.state = state
        self.definitions = definitions
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    def add(self, execution_id: str) -> None:
        """Archive this finished execution (soon, in a batch)."""
        self._queue.put_nowait(execution_id)

    async def drain(self) -> None:
        """Let the archive catch up, briefly (at most ``ARCHIVE_DRAIN`` seconds)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ARCHIVE_DRAIN):
                await self._queue.join()

    async def run(self) -> None:
        """Copy finished executions to the archive, off the event path, in batches (one
        state read and one archive write for up to ARCHIVE_BATCH executions). Best
        effort: the runtime state stays in the state store for the retention period."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < ARCHIVE_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.archive_batch(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def archive_batch(self, execution_ids: Sequence[str]) -> None:
        """Archive together; if that fails, one by one, so one bad record (or a write the
        archive refuses) does not cost the others their archive. Two failures in a row
        one by one mean the archive itself is unavailable: the rest of the batch is
        skipped rather than waiting out a timeout per execution."""
        try:
            await self._archive(execution_ids)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            if len(execution_ids) == 1:
                log.exception("archiving execution %s failed", execution_ids[0])
                return
            log.warning("archiving %d executions together failed; one by one", len(execution_ids))
        failures_in_a_row = 0
        for done, execution_id in enumerate(execution_ids):
            try:
                await self._archive([execution_id])
                failures_in_a_row = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("archiving execution %s failed", execution_id)
                failures_in_a_row += 1
                if failures_in_a_row == 2:
                    left = len(execution_ids) - done - 1
                    log.error("the archive looks unavailable; %d execution(s) not archived", left)
                    return

    async def _archive(self, execution_ids: Sequence[str]) -> None:
        records: list[dict[str, Any]] = []
        for meta, nodes in await self.state.get_executions(execution_ids):
            record: dict[str, Any] = meta.model_dump(mode="json")
            record["nodes"] = {k: v.model_dump(mode="json") for k, v in nodes.items()}
            records.append(record)
        if records:
            await self.definitions.archive_many(records)
