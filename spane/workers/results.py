"""What a worker reports: a task's result or failure, and the batched flush of results.

:func:`failure_from` turns what a task raised into a :class:`TaskFailure`;
:func:`output_problem` refuses an output the orchestrator could not take (not JSON, too
large, a value JSON cannot carry faithfully). :class:`ResultFlusher` stores finished
results (one round trip) and then publishes them (one batch): a result is durable before
the orchestrator can act on it, and a redelivered task re-publishes the stored one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel

from spane import retrying
from spane.bus.base import Bus
from spane.bus.codec import json_value_problem
from spane.errors import TaskError
from spane.expressions.limits import encoded_size
from spane.observability.logs import trimmed_traceback
from spane.schemas.messages import TaskFailure, TaskMessage, TaskResult
from spane.state.base import StateStore

log = logging.getLogger("spane.worker")

FLUSH_RETRY_PAUSE = 0.5
"""Seconds between tries to store and publish results while a server is down."""


def to_json_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def failure_from(exc: BaseException) -> TaskFailure:
    """How an exception raised by a task is reported: a :class:`TaskError` as the task
    described it; any other with its traceback (the last 4 KB) in ``details.traceback``."""
    if isinstance(exc, TaskError):
        return TaskFailure(
            type=exc.type,
            message=exc.message,
            details=exc.details,
            non_retryable=exc.non_retryable,
            retry_after=exc.retry_after,
        )
    details = {"traceback": trimmed_traceback(exc)}
    if isinstance(exc, TimeoutError):
        return TaskFailure(type="Timeout", message=str(exc) or "timed out", details=details)
    return TaskFailure(
        type=type(exc).__name__, message=str(exc) or type(exc).__name__, details=details
    )


def failed_result(task: TaskMessage, failure: TaskFailure) -> TaskResult:
    return TaskResult(
        task_id=task.task_id,
        execution_id=task.execution_id,
        node_id=task.node_id,
        attempt=task.attempt,
        ok=False,
        error=failure,
    )


def output_problem(output: Any, max_bytes: int) -> TaskFailure | None:
    """Why a task's ``output`` cannot be its result (None: it can)."""
    try:
        size = encoded_size(output)
    except (TypeError, ValueError) as exc:
        return TaskFailure(
            type="OutputNotSerialisable",
            message=f"task output is not JSON-serialisable: {exc}",
            non_retryable=True,
        )
    if size > max_bytes:
        return TaskFailure(
            type="OutputTooLarge",
            message=f"output is {size} bytes, over the limit of {max_bytes} bytes",
            non_retryable=True,
        )
    problem = json_value_problem(output)  # what the orchestrator's decoder would refuse
    if problem is not None:
        return TaskFailure(
            type="OutputNotSerialisable",
            message=f"task output cannot travel as JSON: {problem}",
            non_retryable=True,
        )
    return None


class ResultFlusher:
    """The results a worker has to store and publish, flushed together soon after."""

    def __init__(self, state: StateStore, bus: Bus) -> None:
        self.state = state
        self.bus = bus
        self._finishing: set[str] = set()
        """Attempts finished here whose result is not stored yet (duplicates skip them)."""
        self._results: list[tuple[TaskResult, bool]] = []
        """Results to publish, each with whether it is stored already."""
        self._flush_task: asyncio.Task[None] | None = None

    def finishing(self, task_id: str) -> bool:
        """Whether ``task_id`` finished here and its result is not stored yet."""
        return task_id in self._finishing

    def queue(self, result: TaskResult, *, stored: bool = False) -> None:
        if not stored:  # until its result is stored, a duplicate delivery must not run it
            self._finishing.add(result.task_id)
        self._results.append((result, stored))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0)
        await self.flush()

    async def drain(self) -> None:
        """Let a flush on its way finish (it may have taken a batch), then flush the rest."""
        if self._flush_task is not None:
            await asyncio.gather(asyncio.shield(self._flush_task), return_exceptions=True)
        await self.flush()

    async def flush(self) -> None:
        """Store the queued results, then publish them: a result is durable before the
        orchestrator can act on it (a redelivered task then re-publishes it)."""
        while self._results:  # each try takes every result queued by then
            await retrying.call(self._flush_policy, self._flush_queued)

    @staticmethod
    def _flush_policy() -> retrying.AsyncRetrying:
        return retrying.forever(FLUSH_RETRY_PAUSE, log, "storing or publishing results")

    async def _flush_queued(self) -> None:
        """One try: store the queued results not stored yet, then publish them all; on a
        failure they go back to the head of the queue (the stored ones marked so)."""
        batch, self._results = self._results, []
        try:
            fresh = [result for result, stored in batch if not stored]
            await self.state.finish_tasks(fresh)
            self._finishing.difference_update(result.task_id for result in fresh)
            batch = [(result, True) for result, _ in batch]
            await self.bus.publish_results([result for result, _ in batch])
        except Exception:
            self._results = batch + self._results
            raise
