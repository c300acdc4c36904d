"""Storage protocols: runtime state (:class:`StateStore`) and definitions
(:class:`DefinitionStore`). Memory implementations ship next to the real ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from spane.schemas.claims import ClaimInfo
from spane.schemas.commands import Command
from spane.schemas.messages import TaskResult
from spane.schemas.state import ExecutionMeta, NodeState, Timer
from spane.schemas.view import ExecutionView
from spane.schemas.workflow import WorkflowSpec


class WorkflowRecord(BaseModel):
    """One registered version of a workflow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow_id: str
    version: int
    checksum: str
    spec: WorkflowSpec
    created_at: float


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # run it
    RUNNING = "running"  # another worker holds a live claim
    FINISHED = "finished"  # already done: re-publish the stored result
    CANCELLED = "cancelled"  # the attempt was cancelled before it started: drop it


@dataclass(frozen=True, slots=True)
class TaskClaim:
    outcome: ClaimOutcome
    result: TaskResult | None = None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One claim (or renewal) of a task id, for :meth:`StateStore.claim_tasks`."""

    task_id: str
    worker_id: str
    lease: float
    """Seconds the claim stays live unless renewed."""


@dataclass(frozen=True, slots=True)
class Applied:
    """A transition already applied for this event id, with what it asked to publish."""

    commands: Sequence[Command]


class StateStore(Protocol):
    """Runtime state of executions, timers, idempotency keys and task claims."""

    async def connect(self) -> None:
        """Open connections and load scripts (idempotent)."""
        ...

    async def create(self, view: ExecutionView, event_id: str, commands: Sequence[Command]) -> bool:
        """Store a new execution; False (and nothing written) if the id exists."""
        ...

    async def load(self, execution_id: str) -> ExecutionView | None:
        """The execution's meta and node states, with the revision to commit against."""
        ...

    async def applied(self, execution_id: str, event_id: str) -> Applied | None:
        """The recorded outcome if this event was already applied."""
        ...

    async def load_with(
        self, execution_id: str, event_ids: Sequence[str]
    ) -> tuple[ExecutionView | None, dict[str, Applied]]:
        """``load`` and ``applied`` for several events, in one round trip."""
        ...

    async def load_many(
        self, requests: Mapping[str, Sequence[str]]
    ) -> dict[str, tuple[ExecutionView | None, dict[str, Applied]]]:
        """``load_with`` for several executions (execution id -> event ids), one round trip."""
        ...

    async def commit_many(
        self, view: ExecutionView, records: Mapping[str, Sequence[Command]]
    ) -> None:
        """``commit`` of several events applied to one view, atomically (micro-batch)."""
        ...

    async def commit_each(
        self, commits: Sequence[tuple[ExecutionView, Mapping[str, Sequence[Command]]]]
    ) -> list[bool]:
        """``commit_many`` for several executions in one round trip, each atomic on its
        own; False in place of a commit that conflicted (it wrote nothing)."""
        ...

    async def commit(self, view: ExecutionView, event_id: str, commands: Sequence[Command]) -> None:
        """Persist the view's changes atomically if its revision is current.

        Raises :class:`~spane.errors.StateConflictError` when another writer got there
        first. Records ``event_id`` with ``commands`` so a redelivery republishes them.
        """
        ...

    async def get_meta(self, execution_id: str) -> ExecutionMeta | None: ...

    async def get_nodes(self, execution_id: str) -> dict[str, NodeState]: ...

    async def get_executions(
        self, execution_ids: Sequence[str]
    ) -> list[tuple[ExecutionMeta, dict[str, NodeState]]]:
        """Meta and node states of each execution that exists, in order (one round trip)."""
        ...

    async def list_executions(
        self, workflow_id: str | None = None, limit: int = 100
    ) -> list[ExecutionMeta]: ...

    async def schedule_timers(self, timers: Sequence[Timer]) -> None: ...

    async def cancel_timers(self, timer_ids: Sequence[str]) -> None: ...

    async def update_timers(self, schedule: Sequence[Timer], cancel: Sequence[str]) -> None:
        """Cancel the ``cancel`` ids and schedule ``schedule`` in one write (a timer id
        in both ends up scheduled)."""
        ...

    async def claim_due_timers(self, now: float, limit: int, lease: float) -> list[Timer]:
        """Atomically take timers due at ``now``; each is returned to one caller only.

        A claimed timer that is not acknowledged within ``lease`` seconds (its claimer
        died before publishing it) becomes due again.
        """
        ...

    async def ack_timers(self, timers: Sequence[Timer]) -> None:
        """Forget claimed timers once published (unless re-scheduled since the claim)."""
        ...

    async def next_timer_at(self) -> float | None: ...

    async def claim_start_key(self, scope: str, key: str, execution_id: str) -> str:
        """Bind an idempotency key to an execution id; returns the id it is bound to."""
        ...

    async def acquire_slot(self, workflow_id: str, execution_id: str, limit: int) -> bool:
        """Take one of ``limit`` running slots of a workflow, or queue ``execution_id``
        (FIFO) and return False. Idempotent for an execution already holding one."""
        ...

    async def release_slot(self, workflow_id: str, execution_id: str, limit: int) -> list[str]:
        """Give back (or leave the queue of) a slot; returns the queued executions that
        now hold a slot and should be activated."""
        ...

    async def slot_holders(self, workflow_id: str) -> list[str]:
        """Executions holding a ``max_executions`` slot of the workflow."""
        ...

    async def claim_task(self, task_id: str, worker_id: str, lease: float) -> TaskClaim:
        """Take (or renew) the claim on a task id for ``lease`` seconds; the outcome says
        whether to run it (see :class:`ClaimOutcome`)."""
        ...

    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        """``claim_task`` for each request, in order, in one round trip. Each claim is
        atomic on its own; the batch is not (a crash may leave some taken)."""
        ...

    async def finish_task(self, result: TaskResult) -> None:
        """Store an attempt's result: its claim reads ``FINISHED`` from now on."""
        ...

    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        """``finish_task`` for each result, in order, in one round trip."""
        ...

    async def cancel_tasks(self, task_ids: Sequence[str]) -> None:
        """Mark attempts cancelled, so a worker that has not started one never does."""
        ...

    async def get_claim(self, task_id: str) -> ClaimInfo | None:
        """The claim on a task id (None if no worker claimed it yet)."""
        ...

    async def close(self) -> None: ...


class DefinitionStore(Protocol):
    """Versioned workflow definitions, the archive of finished executions (a
    JSON-serialisable dict per execution) and dead letters."""

    async def connect(self) -> None:
        """Open connections and create indexes (idempotent)."""
        ...

    async def register(self, spec: WorkflowSpec, checksum: str, now: float) -> WorkflowRecord:
        """Same content as the latest version -> that version; else version + 1."""
        ...

    async def get(self, workflow_id: str, version: int | None = None) -> WorkflowRecord:
        """Raises :class:`~spane.errors.WorkflowNotFoundError`."""
        ...

    async def list_workflows(self) -> list[WorkflowRecord]:
        """The latest version of every workflow, sorted by workflow id."""
        ...

    async def archive(self, execution: dict[str, Any]) -> None:
        """Store (or replace) one finished execution's record under its ``id``."""
        ...

    async def archive_many(self, executions: Sequence[dict[str, Any]]) -> None:
        """:meth:`archive` for several records at once (one write)."""
        ...

    async def get_archived(self, execution_id: str) -> dict[str, Any] | None: ...

    async def record_dead_letter(self, entry: dict[str, Any]) -> None:
        """Keep a message that could not be processed, with the reason."""
        ...

    async def list_dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        ...

    async def close(self) -> None: ...
