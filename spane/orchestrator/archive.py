"""Copying finished executions to the archive (the definition store), off the event path,
without ever losing one.

The queue of executions to archive lives in the state store, written in the same atomic
commit that finishes an execution (:meth:`StateStore.claim_unarchived`): a crash, a
restart or a Redis failover loses nothing. Any orchestrator replica archives what is
due, in batches (one state read and one archive write for up to ``ARCHIVE_BATCH``),
under a lease: an execution whose archiver died is due again when the lease ends. Only
once the archive holds an execution is it marked archived, which starts its retention
in the state store. A batch that fails is tried one by one so one bad record costs only
itself; what fails stays queued and is tried again after ``ARCHIVE_LEASE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from spane.state.base import DefinitionStore, StateStore

log = logging.getLogger("spane.orchestrator")

ARCHIVE_BATCH = 64
ARCHIVE_LEASE = 30.0
"""Seconds an execution claimed for the archive waits before another replica may try."""
ARCHIVE_POLL = 2.0
"""Seconds between looks at the queue when nothing woke the archiver."""
ARCHIVE_DRAIN = 5.0
"""Seconds a stopping orchestrator lets the archive catch up."""


class Archiver:
    def __init__(
        self, state: StateStore, definitions: DefinitionStore, clock: Callable[[], float]
    ) -> None:
        self.state = state
        self.definitions = definitions
        self.clock = clock
        self._wake = asyncio.Event()

    def add(self, execution_id: str) -> None:
        """An execution finished (it is queued in the state store already): look soon."""
        self._wake.set()

    async def drain(self) -> None:
        """Archive what is due now, for at most ``ARCHIVE_DRAIN`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ARCHIVE_DRAIN):
                while await self.archive_due() == ARCHIVE_BATCH:
                    pass

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.archive_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("archive queue unavailable; retrying in %.1fs", ARCHIVE_POLL)
                claimed = 0
            if claimed == ARCHIVE_BATCH:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ARCHIVE_POLL):
                    await self._wake.wait()

    async def archive_due(self) -> int:
        """Archive one batch of due executions; how many were claimed."""
        claimed = await self.state.claim_unarchived(self.clock(), ARCHIVE_BATCH, ARCHIVE_LEASE)
        if claimed:
            archived = await self.archive_batch(claimed)
            await self.state.mark_archived(archived)
        return len(claimed)

    async def archive_batch(self, execution_ids: Sequence[str]) -> list[str]:
        """Archive together; if that fails, one by one, so one bad record (or a write the
        archive refuses) does not cost the others their archive. Two failures in a row
        one by one mean the archive itself is unavailable: the rest wait for the next
        try. Returns the ids the archive now holds."""
        try:
            await self._archive(execution_ids)
            return list(execution_ids)
        except asyncio.CancelledError:
            raise
        except Exception:
            if len(execution_ids) == 1:
                log.exception("archiving execution %s failed; it stays queued", execution_ids[0])
                return []
            log.warning("archiving %d executions together failed; one by one", len(execution_ids))
        archived: list[str] = []
        failures_in_a_row = 0
        for execution_id in execution_ids:
            try:
                await self._archive([execution_id])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("archiving execution %s failed; it stays queued", execution_id)
                failures_in_a_row += 1
                if failures_in_a_row == 2:
                    left = len(execution_ids) - len(archived) - failures_in_a_row
                    log.error("the archive looks unavailable; %d execution(s) wait", left)
                    break
                continue
            failures_in_a_row = 0
            archived.append(execution_id)
        return archived

    async def _archive(self, execution_ids: Sequence[str]) -> None:
        records: list[dict[str, Any]] = []
        for meta, nodes in await self.state.get_executions(execution_ids):
            record: dict[str, Any] = meta.model_dump(mode="json")
            record["nodes"] = {k: v.model_dump(mode="json") for k, v in nodes.items()}
            records.append(record)
        if records:
            await self.definitions.archive_many(records)
