"""Storage protocols: runtime state (:class:`StateStore`) and definitions
(:class:`DefinitionStore`). Memory implementations ship next to the real ones.

:class:`StateStore` holds what the orchestrator and the workers share while executions
run: each execution's meta and node states with the events already applied (loaded
and committed in batches, one round trip each, guarded by a revision), the timers,
the start idempotency keys and ``max_executions`` slots, and the task claims that
keep an attempt on one worker at a time. :class:`DefinitionStore` holds the durable
part: workflow versions, the archive of finished executions and dead letters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
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
    UNKNOWN = "unknown"  # no such running attempt (forged, or superseded): drop it


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
    attempt: AttemptRef | None = None
    """The attempt the task message names: claimed only if that attempt is the running
    attempt of its node (a forged or superseded task message runs nothing)."""

    @property
    def names_its_attempt(self) -> bool:
        """Whether the task id is the one of the attempt the message names (one that is
        not is forged or garbled: UNKNOWN, whatever the stored state)."""
        return self.attempt is None or self.task_id == self.attempt.task_id


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """An attempt of a node of an execution, as a task message names it."""

    execution_id: str
    node_id: str
    attempt: int

    @property
    def task_id(self) -> str:
        """The id of this attempt's task (as :func:`spane.core.ids.task_id` makes it)."""
        return f"{self.execution_id}:{self.node_id}:{self.attempt}"


def execution_of_task(task_id: str) -> str:
    """The execution a task id names (``<execution>:<node>:<attempt>``; node ids hold
    no colon, execution ids may)."""
    return task_id.rsplit(":", 2)[0]


@dataclass(frozen=True, slots=True)
class Applied:
    """A transition already applied for this event id, with what it asked to publish."""

    commands: Sequence[Command]


class StateStore(Protocol):
    """Runtime state of executions, timers, idempotency keys and task claims.

    One batched form per operation, each one round trip:

    * executions: :meth:`create` a new one; :meth:`load_many` views (with the records
      of events already applied) and :meth:`commit_each` decided views back, guarded by
      their revision (optimistic concurrency); :meth:`get_meta`, :meth:`get_nodes`,
      :meth:`get_executions` and :meth:`list_executions` read without a revision;
    * timers: a create or commit stores the timers its commands schedule and cancel
      in the same atomic step; :meth:`update_timers` schedules and cancels others (the
      timer loop's re-scheduling), :meth:`claim_due_timers`
      takes due ones under a lease, :meth:`ack_timers` forgets published ones,
      :meth:`next_timer_at` tells when to look again;
    * start idempotency keys and ``max_executions`` slots: :meth:`claim_start_key`,
      :meth:`acquire_slot`, :meth:`release_slot`, :meth:`slot_holders`;
    * task attempts (at most one live worker each): :meth:`claim_tasks`,
      :meth:`finish_tasks`, :meth:`cancel_tasks`, :meth:`get_claim`;
    * the archive queue: a commit that finishes an execution queues it in the same
      atomic step; :meth:`claim_unarchived` takes due ones under a lease and
      :meth:`mark_archived` forgets them and only then starts their retention, so an
      execution is never deleted before the archive holds it.
    """

    async def connect(self) -> None:
        """Open connections and load scripts (idempotent)."""
        ...

    async def create(self, view: ExecutionView, event_id: str, commands: Sequence[Command]) -> bool:
        """Store a new execution, recording ``event_id`` with ``commands`` as applied;
        False (and nothing written) if the id exists. Sets ``view.revision``."""
        ...

    async def load_many(
        self,
        requests: Mapping[str, Sequence[str]],
        loops: Mapping[str, Mapping[str, int]] | None = None,
        nodes: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, tuple[ExecutionView | None, dict[str, Applied]]]:
        """For each execution id, its view (meta and node states, with the revision to
        commit against; None if unknown) and the records of those of its event ids
        already applied (event id -> :class:`Applied`), in one round trip (none when
        ``requests`` is empty).

        ``nodes`` (execution id -> node ids) lets a store read only those node states
        of an execution (the nodes its events will likely touch: a load then costs the
        same in a workflow of 10 nodes or 2,000); the view raises
        :class:`~spane.schemas.view.MissingNodesError` for any other, and the caller
        loads again without the hint. A store may always load every node.

        ``loops`` (execution id -> loop node id -> iterations of it that finished in
        the batch) lets a store that loads loop data piecemeal read, in the same round
        trip, what those events will likely need; the view raises
        :class:`~spane.schemas.view.MissingLoopDataError` for the rest
        (:meth:`load_loop_values`).

        A store may keep the execution's input apart from its meta, written once by
        :meth:`create` and never by a commit: its views then hold it in
        ``ExecutionView.input`` (``full_meta()`` puts it back), not in ``meta.input``.
        Every other read (:meth:`get_meta`, :meth:`get_executions`,
        :meth:`list_executions`) returns metas with the input in them."""
        ...

    async def load_loop_values(self, execution_id: str, fields: Sequence[str]) -> dict[str, Any]:
        """Loop data fields of an execution (``ExecutionView.loop_values``): field ->
        value, or :data:`~spane.schemas.view.ABSENT` where none was written."""
        ...

    async def commit_each(
        self, commits: Sequence[tuple[ExecutionView, Mapping[str, Sequence[Command]]]]
    ) -> list[bool]:
        """Persist each view's changes with its records (event id -> the commands it
        asked to publish, so a redelivery republishes them), in one round trip.

        Each commit is atomic on its own and happens only if the view's revision is
        still the stored one (its ``revision`` then moves on), of the same incarnation
        of the id (the execution the view was read from, not one created again with its
        id after it expired) and none of its events was applied already; False in its
        place when another writer got there first, an event was applied before, or the
        execution is unknown (nothing written).
        The timers the records' commands schedule and cancel (``ScheduleTimer``,
        ``CancelTimer``; the last word per timer id wins) are stored in the same step;
        :meth:`create` does the same with its commands.
        """
        ...

    async def get_meta(self, execution_id: str) -> ExecutionMeta | None:
        """The execution's meta (None if unknown)."""
        ...

    async def get_nodes(self, execution_id: str) -> dict[str, NodeState]:
        """The execution's node states (empty if unknown)."""
        ...

    async def get_executions(
        self, execution_ids: Sequence[str]
    ) -> list[tuple[ExecutionMeta, dict[str, NodeState]]]:
        """Meta and node states of each execution that exists, in order (one round trip)."""
        ...

    async def list_executions(
        self, workflow_id: str | None = None, limit: int = 100
    ) -> list[ExecutionMeta]:
        """Up to ``limit`` executions (of one workflow, or all), newest first."""
        ...

    async def update_timers(self, schedule: Sequence[Timer], cancel: Sequence[str]) -> None:
        """Cancel the ``cancel`` ids and schedule ``schedule`` in one write (a timer id
        in both ends up scheduled; scheduling an existing id replaces it). Ids are the
        core's (:func:`spane.core.ids.timer_id`, which names the execution)."""
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

    async def next_timer_at(self) -> float | None:
        """When the earliest scheduled timer is due (None if there is none)."""
        ...

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

    async def cron_cursors(self, keys: Sequence[str]) -> dict[str, float]:
        """The last tick fired (Unix seconds) of each cron trigger key that has one."""
        ...

    async def advance_cron_cursors(self, ticks: Mapping[str, float]) -> None:
        """Record cron ticks fired: each key's cursor moves to its tick if that is later
        (never back), in one round trip."""
        ...

    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        """Take (or renew) the claim on each request's task id for its ``lease``, in
        order, in one round trip; each outcome says whether to run it (see
        :class:`ClaimOutcome`). Each claim is atomic on its own; the batch is not (a
        crash may leave some taken)."""
        ...

    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        """Store attempts' results, in one round trip: their claims read ``FINISHED``
        from now on."""
        ...

    async def cancel_tasks(self, task_ids: Sequence[str]) -> None:
        """Mark attempts cancelled, so a worker that has not started one never does."""
        ...

    async def claim_unarchived(self, now: float, limit: int, lease: float) -> list[str]:
        """Up to ``limit`` finished executions not archived yet, each claimed for
        ``lease`` seconds (due again then unless marked archived: its archiver died)."""
        ...

    async def mark_archived(self, execution_ids: Sequence[str]) -> None:
        """The archive holds these executions: leave the queue, start their retention."""
        ...

    async def get_claim(self, task_id: str) -> ClaimInfo | None:
        """The claim on a task id (None if no worker claimed it yet)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


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
        """Keep a message that could not be processed, with the reason. An entry with an
        ``id`` replaces the one stored under that id (storing it twice keeps one)."""
        ...

    async def list_dead_letters(
        self, limit: int = 100, *, before: tuple[float, str] | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` entries, newest first: by ``dead_at`` then ``id``, descending;
        with ``before`` (a ``(dead_at, id)`` position), only the entries after it."""
        ...

    async def get_dead_letter(self, entry_id: str) -> dict[str, Any] | None:
        """The entry stored under ``entry_id`` (None if there is none)."""
        ...

    async def delete_dead_letter(self, entry_id: str) -> bool:
        """Forget an entry; False if there was none."""
        ...

    async def close(self) -> None: ...
