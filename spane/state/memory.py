"""In-memory stores for the embedded mode: same contracts as Redis / MongoDB.

State lives in this process only; records are immutable pydantic models, so the
store keeps references and hands out views without copying whole executions.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spane.errors import WorkflowNotFoundError
from spane.schemas.claims import ClaimInfo
from spane.schemas.commands import Command
from spane.schemas.messages import TaskResult
from spane.schemas.state import (
    TERMINAL_EXECUTION_STATUSES,
    ExecutionMeta,
    NodeState,
    NodeStatus,
    Timer,
)
from spane.schemas.view import ABSENT, ExecutionView
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import (
    Applied,
    AttemptRef,
    ClaimOutcome,
    ClaimRequest,
    TaskClaim,
    WorkflowRecord,
    execution_of_task,
)
from spane.state.serde import timer_changes

MAX_APPLIED_PER_EXECUTION = 10_000
MAX_FINISHED = 10_000
"""Finished executions the embedded store keeps (older ones live on in the archive)."""


@dataclass(slots=True)
class _Execution:
    meta: ExecutionMeta
    nodes: dict[str, NodeState]
    revision: int = 0
    applied: OrderedDict[str, Sequence[Command]] = field(default_factory=OrderedDict)
    loops: dict[str, Any] = field(default_factory=dict)
    """Loop data (``ExecutionView.loop_values``): field -> value."""


@dataclass(slots=True)
class _Claim:
    worker_id: str
    expires_at: float
    result: TaskResult | None = None
    cancelled: bool = False

    def renew(self, worker_id: str, expires_at: float) -> None:
        self.worker_id = worker_id
        self.expires_at = expires_at


class MemoryStateStore:
    """:class:`~spane.state.base.StateStore` in process memory."""

    def __init__(
        self, clock: Callable[[], float] = time.time, max_finished: int = MAX_FINISHED
    ) -> None:
        self._clock = clock
        self._max_finished = max_finished
        self._finished: deque[str] = deque()
        self._retired: set[str] = set()
        self._executions: dict[str, _Execution] = {}
        self._timers: dict[str, Timer] = {}
        self._heap: list[tuple[float, str]] = []
        self._start_keys: dict[tuple[str, str], str] = {}
        self._claims: dict[str, _Claim] = {}
        self._claims_of: dict[str, list[str]] = {}
        """Execution id -> its task ids in ``_claims`` (dropped with it, in O(its tasks))."""
        self._slots: dict[str, set[str]] = {}
        self._waiting: dict[str, deque[str]] = {}
        self._cron: dict[str, float] = {}
        self._to_archive: dict[str, float] = {}
        """Finished executions not archived yet, by when they are due (claims push it)."""

    async def connect(self) -> None:
        return None

    async def create(self, view: ExecutionView, event_id: str, commands: Sequence[Command]) -> bool:
        meta = view.meta
        if meta.id in self._executions:
            return False
        entry = _Execution(meta, dict(view.changed_nodes), revision=1)
        entry.loops.update(view.changed_loop_values)
        entry.applied[event_id] = list(commands)
        self._executions[meta.id] = entry
        self._store_timers(commands)
        view.revision = 1
        if meta.status in TERMINAL_EXECUTION_STATUSES:
            self._to_archive.setdefault(meta.id, meta.finished_at or meta.created_at)
        return True

    async def load_many(
        self,
        requests: Mapping[str, Sequence[str]],
        loops: Mapping[str, Mapping[str, int]] | None = None,
        nodes: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, tuple[ExecutionView | None, dict[str, Applied]]]:
        loaded: dict[str, tuple[ExecutionView | None, dict[str, Applied]]] = {}
        for execution_id, event_ids in requests.items():
            entry = self._executions.get(execution_id)
            if entry is None:
                loaded[execution_id] = (None, {})
                continue
            applied = {e: Applied(entry.applied[e]) for e in event_ids if e in entry.applied}
            view = ExecutionView(entry.meta, entry.nodes, entry.revision, entry.loops)
            loaded[execution_id] = (view, applied)
        return loaded

    async def load_loop_values(self, execution_id: str, fields: Sequence[str]) -> dict[str, Any]:
        entry = self._executions.get(execution_id)
        loops = entry.loops if entry is not None else {}
        return {name: loops.get(name, ABSENT) for name in fields}

    async def commit_each(
        self, commits: Sequence[tuple[ExecutionView, Mapping[str, Sequence[Command]]]]
    ) -> list[bool]:
        return [self._commit(view, records) for view, records in commits]

    def _commit(self, view: ExecutionView, records: Mapping[str, Sequence[Command]]) -> bool:
        """One commit of :meth:`commit_each`: False (nothing written) on a conflict."""
        entry = self._executions.get(view.meta.id)
        if entry is None or entry.revision != view.revision:
            return False
        if entry.meta.created_at != view.meta.created_at:
            return False  # another incarnation of the id: the view's is gone
        if any(event_id in entry.applied for event_id in records):
            return False
        entry.meta = view.meta
        entry.nodes.update(view.changed_nodes)
        entry.loops.update(view.changed_loop_values)
        entry.revision += 1
        view.revision = entry.revision
        for event_id, commands in records.items():
            entry.applied[event_id] = list(commands)
        self._store_timers(itertools.chain.from_iterable(records.values()))
        while len(entry.applied) > MAX_APPLIED_PER_EXECUTION:
            entry.applied.popitem(last=False)
        meta = view.meta
        if meta.status in TERMINAL_EXECUTION_STATUSES and meta.id not in self._retired:
            self._to_archive.setdefault(meta.id, meta.finished_at or meta.created_at)
        elif meta.status not in TERMINAL_EXECUTION_STATUSES:
            self._running_again(meta.id)
        return True

    def _running_again(self, execution_id: str) -> None:
        """A retried execution runs again: out of the archive queue and of retention
        (Redis: the COMMIT script's PERSIST); archived again when it finishes."""
        self._to_archive.pop(execution_id, None)
        if execution_id in self._retired:
            self._retired.discard(execution_id)
            self._finished.remove(execution_id)

    async def claim_unarchived(self, now: float, limit: int, lease: float) -> list[str]:
        due = sorted((at, eid) for eid, at in self._to_archive.items() if at <= now)[:limit]
        for _, execution_id in due:
            self._to_archive[execution_id] = now + lease
        return [execution_id for _, execution_id in due]

    async def mark_archived(self, execution_ids: Sequence[str]) -> None:
        for execution_id in execution_ids:
            if self._to_archive.pop(execution_id, None) is not None:
                self._retire(execution_id)

    def _retire(self, execution_id: str) -> None:
        """Retention: keep the most recent ``max_finished`` archived executions (the
        archive in the definition store keeps their record); an execution not archived
        yet is never dropped."""
        self._finished.append(execution_id)
        self._retired.add(execution_id)
        while len(self._finished) > self._max_finished:
            oldest = self._finished.popleft()
            self._retired.discard(oldest)
            self._executions.pop(oldest, None)
            for task_id in self._claims_of.pop(oldest, ()):
                self._claims.pop(task_id, None)

    async def get_meta(self, execution_id: str) -> ExecutionMeta | None:
        entry = self._executions.get(execution_id)
        return entry.meta if entry else None

    async def get_nodes(self, execution_id: str) -> dict[str, NodeState]:
        entry = self._executions.get(execution_id)
        return dict(entry.nodes) if entry else {}

    async def get_executions(
        self, execution_ids: Sequence[str]
    ) -> list[tuple[ExecutionMeta, dict[str, NodeState]]]:
        entries = (self._executions.get(execution_id) for execution_id in execution_ids)
        return [(entry.meta, dict(entry.nodes)) for entry in entries if entry is not None]

    async def list_executions(
        self, workflow_id: str | None = None, limit: int = 100
    ) -> list[ExecutionMeta]:
        metas = [
            e.meta
            for e in self._executions.values()
            if workflow_id is None or e.meta.workflow_id == workflow_id
        ]
        metas.sort(key=lambda m: m.created_at, reverse=True)
        return metas[:limit]

    async def update_timers(self, schedule: Sequence[Timer], cancel: Sequence[str]) -> None:
        self._update_timers(schedule, cancel)

    def _update_timers(self, schedule: Sequence[Timer], cancel: Sequence[str]) -> None:
        for timer_id in cancel:
            self._timers.pop(timer_id, None)
        for timer in schedule:
            self._timers[timer.id] = timer
            heapq.heappush(self._heap, (timer.fire_at, timer.id))

    def _store_timers(self, commands: Iterable[Command]) -> None:
        """The timers a create's or commit's commands cancel and schedule, in the same
        step (as the Redis scripts do)."""
        cancelled, scheduled = timer_changes(commands)
        self._update_timers(scheduled, cancelled)

    async def claim_due_timers(self, now: float, limit: int, lease: float = 30.0) -> list[Timer]:
        due: list[Timer] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            fire_at, timer_id = heapq.heappop(self._heap)
            timer = self._timers.get(timer_id)
            if timer is not None and timer.fire_at == fire_at:
                del self._timers[timer_id]
                due.append(timer)
        return due

    async def ack_timers(self, timers: Sequence[Timer]) -> None:
        return None  # claimed timers were removed at claim time: one process, no crash gap

    async def next_timer_at(self) -> float | None:
        while self._heap:
            fire_at, timer_id = self._heap[0]
            timer = self._timers.get(timer_id)
            if timer is not None and timer.fire_at == fire_at:
                return fire_at
            heapq.heappop(self._heap)
        return None

    async def claim_start_key(self, scope: str, key: str, execution_id: str) -> str:
        return self._start_keys.setdefault((scope, key), execution_id)

    async def acquire_slot(self, workflow_id: str, execution_id: str, limit: int) -> bool:
        running = self._slots.setdefault(workflow_id, set())
        waiting = self._waiting.setdefault(workflow_id, deque())
        if execution_id in running:
            return True
        if len(running) < limit and not waiting:
            running.add(execution_id)
            return True
        if execution_id not in waiting:
            waiting.append(execution_id)
        return False

    async def release_slot(self, workflow_id: str, execution_id: str, limit: int) -> list[str]:
        running = self._slots.setdefault(workflow_id, set())
        waiting = self._waiting.setdefault(workflow_id, deque())
        running.discard(execution_id)
        if execution_id in waiting:
            waiting.remove(execution_id)
        promoted: list[str] = []
        while waiting and len(running) < limit:
            next_id = waiting.popleft()
            running.add(next_id)
            promoted.append(next_id)
        return promoted

    async def slot_holders(self, workflow_id: str) -> list[str]:
        return sorted(self._slots.get(workflow_id, ()))

    async def cron_cursors(self, keys: Sequence[str]) -> dict[str, float]:
        return {key: self._cron[key] for key in keys if key in self._cron}

    async def advance_cron_cursors(self, ticks: Mapping[str, float]) -> None:
        for key, tick in ticks.items():
            self._cron[key] = max(tick, self._cron.get(key, tick))

    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        return [self._claim(r) for r in requests]

    def _claim(self, request: ClaimRequest) -> TaskClaim:
        """One claim of :meth:`claim_tasks`."""
        now = self._clock()
        if not request.names_its_attempt:
            return TaskClaim(ClaimOutcome.UNKNOWN)
        claim = self._claims.get(request.task_id)
        if claim is not None and claim.result is not None:
            return TaskClaim(ClaimOutcome.FINISHED, claim.result)
        if claim is not None and claim.cancelled:
            return TaskClaim(ClaimOutcome.CANCELLED)
        if request.attempt is not None and not self._is_running(request.attempt):
            return TaskClaim(ClaimOutcome.UNKNOWN)
        if claim is not None and claim.expires_at > now and claim.worker_id != request.worker_id:
            return TaskClaim(ClaimOutcome.RUNNING)
        self._claim_of(request.task_id).renew(request.worker_id, now + request.lease)
        return TaskClaim(ClaimOutcome.CLAIMED)

    def _claim_of(self, task_id: str) -> _Claim:
        """The claim of a task, made (and indexed by its execution) if it has none."""
        claim = self._claims.get(task_id)
        if claim is None:
            claim = self._claims[task_id] = _Claim("", 0.0)
            self._claims_of.setdefault(execution_of_task(task_id), []).append(task_id)
        return claim

    def _is_running(self, ref: AttemptRef) -> bool:
        entry = self._executions.get(ref.execution_id)
        node = entry.nodes.get(ref.node_id) if entry is not None else None
        return (
            node is not None and node.status == NodeStatus.RUNNING and node.attempt == ref.attempt
        )

    async def cancel_tasks(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            self._claim_of(task_id).cancelled = True

    async def get_claim(self, task_id: str) -> ClaimInfo | None:
        claim = self._claims.get(task_id)
        if claim is None:
            return None
        return ClaimInfo(claim.worker_id, claim.expires_at, claim.result)

    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        for result in results:
            self._claim_of(result.task_id).result = result

    async def close(self) -> None:
        return None


class MemoryDefinitionStore:
    """:class:`~spane.state.base.DefinitionStore` in process memory."""

    def __init__(self, max_dead_letters: int = 10_000, max_archived: int = 100_000) -> None:
        self._versions: dict[str, list[WorkflowRecord]] = {}
        self._archive: OrderedDict[str, bytes] = OrderedDict()
        """Archived records as JSON: one object each instead of a tree of dicts (less
        memory, and nothing for the garbage collector to walk)."""
        self._max_archived = max_archived
        self._dead_letters: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """By id (a generated key for entries without one), oldest first."""
        self._max_dead_letters = max_dead_letters
        self._dead_counter = itertools.count()

    async def connect(self) -> None:
        return None

    async def register(self, spec: WorkflowSpec, checksum: str, now: float) -> WorkflowRecord:
        versions = self._versions.setdefault(spec.id, [])
        if versions and versions[-1].checksum == checksum:
            return versions[-1]
        record = WorkflowRecord(
            workflow_id=spec.id,
            version=len(versions) + 1,
            checksum=checksum,
            spec=spec,
            created_at=now,
        )
        versions.append(record)
        return record

    async def get(self, workflow_id: str, version: int | None = None) -> WorkflowRecord:
        versions = self._versions.get(workflow_id)
        if not versions:
            raise WorkflowNotFoundError(f"workflow {workflow_id!r} is not registered")
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise WorkflowNotFoundError(
                f"workflow {workflow_id!r} has no version {version} (latest: {len(versions)})"
            )
        return versions[version - 1]

    async def list_workflows(self) -> list[WorkflowRecord]:
        return [self._versions[key][-1] for key in sorted(self._versions)]

    async def archive(self, execution: dict[str, Any]) -> None:
        await self.archive_many([execution])

    async def archive_many(self, executions: Sequence[dict[str, Any]]) -> None:
        for execution in executions:
            record = json.dumps(execution, separators=(",", ":")).encode()
            self._archive[str(execution["id"])] = record
        while len(self._archive) > self._max_archived:
            self._archive.popitem(last=False)

    async def get_archived(self, execution_id: str) -> dict[str, Any] | None:
        record = self._archive.get(execution_id)
        return json.loads(record) if record is not None else None

    async def record_dead_letter(self, entry: dict[str, Any]) -> None:
        key = str(entry["id"]) if "id" in entry else f"\0{next(self._dead_counter)}"
        self._dead_letters[key] = copy.deepcopy(entry)
        while len(self._dead_letters) > self._max_dead_letters:
            self._dead_letters.popitem(last=False)

    async def list_dead_letters(
        self, limit: int = 100, *, before: tuple[float, str] | None = None
    ) -> list[dict[str, Any]]:
        def position(entry: dict[str, Any]) -> tuple[float, str]:
            return float(entry.get("dead_at") or 0.0), str(entry.get("id") or "")

        newest = list(reversed(self._dead_letters.values()))
        newest.sort(key=position, reverse=True)  # stable: ties stay newest first
        if before is not None:
            newest = [entry for entry in newest if position(entry) < before]
        return [copy.deepcopy(entry) for entry in newest[: max(limit, 0)]]

    async def get_dead_letter(self, entry_id: str) -> dict[str, Any] | None:
        entry = self._dead_letters.get(entry_id)
        return copy.deepcopy(entry) if entry is not None else None

    async def delete_dead_letter(self, entry_id: str) -> bool:
        return self._dead_letters.pop(entry_id, None) is not None

    async def close(self) -> None:
        return None
