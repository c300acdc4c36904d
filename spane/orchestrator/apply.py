"""Applying inbox messages to executions: load -> decide -> commit, idempotently.

Messages of one micro-batch are grouped by execution: each group is loaded once (with
the records of events already applied), decided message by message on the same view,
and committed once, atomically — so a fan-in of 500 results costs a handful of
commits, not 500. Groups of different executions run concurrently. A lost optimistic
race (a commit another writer beat) re-does the whole group from a fresh load; too
many in a row raise ``StateConflictError``.

After a commit, the orchestrator keeps the view it committed (:meth:`ExecutionView.settled`)
and decides the execution's next events on it without loading: one Redis round trip
less per step of a chain. That is safe because the commit is guarded by the revision
(another writer's commit in between makes it fail, and the group is loaded and decided
again) and refuses an event already applied (so a redelivery is answered from its
record, as after a load). A group decided on a kept view that changed nothing, or left
an event without a record, is decided again on a load too: only a load knows whether
such an event was applied earlier, with commands to publish again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from spane.bus.base import Delivery, Reply
from spane.compiler.plan import Plan
from spane.core.admission import StartRefused, needs_slot, refusal_commands, screen_start
from spane.core.decisions import begin, decide
from spane.core.ids import event_id
from spane.core.options import CoreOptions
from spane.core.prefetch import nodes_read
from spane.errors import StateConflictError, WorkflowNotFoundError
from spane.expressions.limits import check_value
from spane.observability import tracing
from spane.observability.logs import log_context
from spane.orchestrator.plan_cache import PlanCache
from spane.schemas.commands import Command
from spane.schemas.messages import (
    ChildFinished,
    ExecutionMessage,
    SignalCommand,
    StartExecution,
)
from spane.schemas.state import TERMINAL_EXECUTION_STATUSES
from spane.schemas.view import ExecutionView, MissingLoopDataError, MissingNodesError
from spane.state.base import Applied, StateStore

log = logging.getLogger("spane.orchestrator")
T = TypeVar("T")

MAX_CONFLICT_RETRIES = 50
PLANS_REMEMBERED = 10_000
"""Running executions whose plan the orchestrator remembers, to guess which node states
their next events read (:mod:`spane.core.prefetch`); the oldest is forgotten first, and
a finished one at once. As many committed views are kept, and as many executions
whose kept view went stale (another replica wrote them: they are not kept again)."""

KEPT_VIEW_BYTES = 256 * 1024
"""A view holding more encoded state than this is not kept (its next event loads)."""
KEPT_VIEWS_BYTES = 64 * 1024 * 1024
"""The encoded state all kept views may hold together; the oldest go first."""

Outcome = tuple[list[Command], Reply]
"""Commands to run once the state is durable, and the answer for the sender."""


def ok(execution_id: str, **extra: Any) -> Reply:
    return {"ok": True, "execution_id": execution_id, **extra}


def error(reason: str) -> Reply:
    return {"ok": False, "error": reason}


@dataclass(slots=True)
class _Pending:
    """The not-yet-applied messages of one group, with their outcomes so far."""

    deliveries: Sequence[Delivery[ExecutionMessage]]
    outcomes: dict[int, Outcome] = field(default_factory=dict)


class Transitions:
    """The orchestrator's state-changing half (the service adds the bus around it)."""

    def __init__(
        self,
        state: StateStore,
        plans: PlanCache,
        options: CoreOptions,
        clock: Callable[[], float],
        max_value_bytes: int,
        node_events_wanted: Callable[[], bool] | None = None,
    ) -> None:
        self.state = state
        self.plans = plans
        self.options = options
        self.clock = clock
        self.max_value_bytes = max_value_bytes
        self.node_events_wanted = node_events_wanted
        """Whether anyone can receive node-level events right now (None: assume so). The
        embedded bus knows its subscribers; node events nobody can receive are not built."""
        self._plan_of: OrderedDict[str, Plan] = OrderedDict()
        """Execution id -> its plan (:data:`PLANS_REMEMBERED` running executions)."""
        self._views: OrderedDict[str, ExecutionView] = OrderedDict()
        """Execution id -> the view of its state this replica committed last."""
        self._shared: OrderedDict[str, None] = OrderedDict()
        """Executions another writer committed after us: their views are not kept."""
        self._kept_bytes = 0
        """What the kept views hold, by their ``held_bytes`` (:data:`KEPT_VIEWS_BYTES`)."""
        self._quiet = replace(options, node_events=False)

    def current_options(self) -> CoreOptions:
        """The options for a decision made now: node events off while nobody listens."""
        wanted = self.node_events_wanted
        if self.options.node_events and wanted is not None and not wanted():
            return self._quiet
        return self.options

    # ------------------------------------------------------------ existing
    async def apply_groups(
        self, groups: Mapping[str, Sequence[Delivery[ExecutionMessage]]]
    ) -> dict[str, list[Outcome]]:
        """Apply the messages of several executions (each group in order): one load and
        one commit round trip for all of them. An execution whose commit conflicted
        (another replica wrote it) is applied again on its own, as :meth:`apply_group`."""
        prepared = {execution_id: self._prepare(group) for execution_id, group in groups.items()}
        loops = {eid: hints for eid, group in groups.items() if (hints := _loop_hints(group))}
        # the view kept for each execution, taken (a decision changes it); not for loop
        # iterations' ends, whose loop data a kept view does not hold
        kept = {eid: view for eid in groups if (view := self._drop_view(eid)) and eid not in loops}
        loaded = await self.state.load_many(
            {eid: ids for eid, (_, ids) in prepared.items() if eid not in kept},
            loops,
            {
                eid: nodes
                for eid, group in groups.items()
                if eid not in kept and (nodes := self._nodes_read(eid, group))
            },
        )
        done: dict[str, list[Outcome]] = {}
        commits: list[tuple[str, ExecutionView, dict[str, list[Command]], list[Outcome]]] = []
        whole: set[str] = set()  # read a node the load guessed it would not: load them all
        for execution_id, (pending, ids) in prepared.items():
            view, applied = (
                (kept[execution_id], {}) if execution_id in kept else loaded[execution_id]
            )
            with log_context(execution_id):
                try:
                    decided = await self._decide(execution_id, pending, ids, view, applied)
                except MissingLoopDataError:
                    continue  # applied on its own below, loading what it needs
                except MissingNodesError:
                    whole.add(execution_id)
                    continue
            outcomes, records = decided
            if execution_id in kept and not _recorded_all(pending, ids, records):
                continue  # only a load knows whether these events were applied before
            if records is None or view is None:
                done[execution_id] = outcomes
            else:
                commits.append((execution_id, view, records, outcomes))
        if commits:
            done.update(await self._commit(commits, kept))
        for execution_id, group in groups.items():
            if execution_id not in done:
                guess = execution_id not in whole
                done[execution_id] = await self.apply_group(execution_id, group, guess=guess)
        return done

    async def apply_group(
        self,
        execution_id: str,
        deliveries: Sequence[Delivery[ExecutionMessage]],
        *,
        guess: bool = True,
    ) -> list[Outcome]:
        """Apply messages of one execution, in order; one outcome per delivery.
        ``guess``: load only the node states the messages will likely read (when the
        plan is known); a decision that reads another makes the next round load all."""
        pending, ids = self._prepare(deliveries)
        loops = {execution_id: _loop_hints(deliveries)}
        extra: dict[str, Any] = {}  # loop data a decision asked for beyond the prefetch
        guessed = self._nodes_read(execution_id, deliveries) if guess else None
        nodes: dict[str, Collection[str]] = {execution_id: guessed} if guessed else {}
        for _ in range(MAX_CONFLICT_RETRIES):
            outcomes = await self._attempt(execution_id, pending, ids, loops, extra, nodes)
            if outcomes is not None:
                return outcomes
        raise StateConflictError(f"execution {execution_id}: too many concurrent writers")

    def _nodes_read(
        self, execution_id: str, deliveries: Sequence[Delivery[ExecutionMessage]]
    ) -> frozenset[str] | None:
        """The node states these messages will likely read, if the execution's plan is
        known here (:func:`~spane.core.prefetch.nodes_read`); None: load them all."""
        plan = self._plan_of.get(execution_id)
        if plan is None:
            return None
        return nodes_read(plan, (delivery.message for delivery in deliveries))

    async def _commit(
        self,
        commits: Sequence[tuple[str, ExecutionView, dict[str, list[Command]], list[Outcome]]],
        kept: Collection[str],
    ) -> dict[str, list[Outcome]]:
        """Commit decided groups in one round trip: the outcomes of those committed
        (their views kept); the others lost to another writer (``kept``: decided on a
        kept view, which went stale)."""
        committed = await self.state.commit_each([(view, recs) for _, view, recs, _ in commits])
        done: dict[str, list[Outcome]] = {}
        for (execution_id, view, _, outcomes), ok_ in zip(commits, committed, strict=True):
            if ok_:
                done[execution_id] = outcomes
                self._keep_view(execution_id, view)
            elif execution_id in kept:
                self._went_stale(execution_id)
        return done

    def _keep_view(self, execution_id: str, view: ExecutionView) -> None:
        """Keep the view just committed, settled, for the execution's next events
        (within :data:`PLANS_REMEMBERED` views and :data:`KEPT_VIEWS_BYTES`)."""
        self._drop_view(execution_id)
        if (
            view.meta.status in TERMINAL_EXECUTION_STATUSES
            or execution_id in self._shared
            or view.held_bytes > KEPT_VIEW_BYTES
        ):
            return
        self._views[execution_id] = view.settled(view.revision)
        self._kept_bytes += view.held_bytes
        while self._views and (
            len(self._views) > PLANS_REMEMBERED or self._kept_bytes > KEPT_VIEWS_BYTES
        ):
            self._drop_view(next(iter(self._views)))

    def _drop_view(self, execution_id: str) -> ExecutionView | None:
        """The view kept for the execution, no longer kept (None if there was none)."""
        dropped = self._views.pop(execution_id, None)
        if dropped is not None:
            self._kept_bytes -= dropped.held_bytes
        return dropped

    def _went_stale(self, execution_id: str) -> None:
        """Another writer committed the execution after us: keep no view of it again."""
        _remember(self._shared, execution_id, None)

    def _remember_plan(self, execution_id: str, plan: Plan) -> None:
        _remember(self._plan_of, execution_id, plan)

    def _prepare(
        self, deliveries: Sequence[Delivery[ExecutionMessage]]
    ) -> tuple[_Pending, list[str]]:
        """Screen the messages (bad ones answered now) and derive their event ids."""
        screened = _Pending(deliveries)
        for index, delivery in enumerate(deliveries):
            problem = self._screen(delivery.message)
            if problem is not None:
                screened.outcomes[index] = ([], error(problem))
        return screened, [event_id(d.message, d.message_id) for d in deliveries]

    def _screen(self, message: ExecutionMessage) -> str | None:
        if isinstance(message, SignalCommand):
            return check_value(
                message.data, what="signal payload", schema=None, max_bytes=self.max_value_bytes
            )
        return None

    async def _attempt(
        self,
        execution_id: str,
        pending: _Pending,
        ids: list[str],
        loops: Mapping[str, Mapping[str, int]],
        extra: dict[str, Any],
        nodes: dict[str, Collection[str]],
    ) -> list[Outcome] | None:
        """One load-decide-commit round; None when another writer got there first, or
        when a decision read loop data not loaded (``extra`` then holds it: the next
        round decides again with it), or node states not loaded (``nodes``, the guess
        of which to load, is then cleared: the next round loads them all)."""
        loaded = await self.state.load_many({execution_id: ids}, loops, nodes)
        view, applied = loaded[execution_id]
        if view is not None:
            view.add_loaded_loop_values(extra)
        with log_context(execution_id):
            try:
                outcomes, records = await self._decide(execution_id, pending, ids, view, applied)
            except MissingLoopDataError as missing:
                extra.update(await self.state.load_loop_values(execution_id, missing.fields))
                return None
            except MissingNodesError:
                nodes.clear()
                return None
        if records is not None and view is not None:
            (committed,) = await self.state.commit_each([(view, records)])
            if not committed:
                return None
            self._keep_view(execution_id, view)
        return outcomes

    async def _decide(
        self,
        execution_id: str,
        pending: _Pending,
        ids: list[str],
        view: ExecutionView | None,
        applied: Mapping[str, Applied],
    ) -> tuple[list[Outcome], dict[str, list[Command]] | None]:
        """Decide every pending message on ``view``: the outcomes, and the records to
        commit (None when nothing changed, so nothing is written)."""
        outcomes = dict(pending.outcomes)
        if view is None:
            missing: Outcome = ([], error(f"execution {execution_id!r} not found"))
            log.warning(
                "dropping %d message(s) for unknown execution %s",
                len(pending.deliveries),
                execution_id,
            )
            return [outcomes.get(i, missing) for i in range(len(pending.deliveries))], None
        records: dict[str, list[Command]] = {}
        plan = await self.plans.get(view.meta.workflow_id, view.meta.version, view.meta.body)
        self._remember_plan(execution_id, plan)
        now = self.clock()
        options = self.current_options()
        for index, delivery in enumerate(pending.deliveries):
            if index in outcomes:
                continue
            eid = ids[index]
            if eid in applied or eid in records:
                recorded = applied[eid].commands if eid in applied else []
                outcomes[index] = (list(recorded), ok(execution_id))
                continue
            decision = decide(plan, view, delivery.message, now, options)
            if decision.rejection is not None:
                outcomes[index] = ([], error(decision.rejection.reason))
                continue
            records[eid] = decision.commands
            if tracing.ENABLED:
                tracing.finished(view.meta, decision.commands)
            outcomes[index] = (decision.commands, ok(execution_id))
        ordered = [outcomes[i] for i in range(len(pending.deliveries))]
        if view.meta.status in TERMINAL_EXECUTION_STATUSES:
            self._plan_of.pop(execution_id, None)  # its last events are decided
        return ordered, records if view.dirty or any(records.values()) else None

    # ----------------------------------------------------------------- start
    async def _recorded_start(self, execution_id: str) -> Applied | None:
        """The record of the execution's ``start`` event, if it was applied."""
        _, applied = (await self.state.load_many({execution_id: ["start"]}))[execution_id]
        return applied.get("start")

    async def start(self, message: StartExecution) -> Outcome:
        """Create and start an execution (idempotent by execution id and start key)."""
        recorded = await self._recorded_start(message.execution_id)
        if recorded is not None:
            return list(recorded.commands), ok(message.execution_id)
        try:
            plan = await self.plans.get(message.workflow_id, message.version, message.body)
        except WorkflowNotFoundError as exc:
            return _refused(message, StartRefused("WorkflowNotFound", str(exc)))
        refused = screen_start(plan, message, self.max_value_bytes)
        if refused is not None:
            return _refused(message, refused)
        if message.idempotency_key:  # only a start that can happen binds its key
            bound = await self.state.claim_start_key(
                message.workflow_id, message.idempotency_key, message.execution_id
            )
            if bound != message.execution_id:
                return [], ok(bound, duplicate=True)
        pending = False
        if needs_slot(plan, message) and plan.max_executions:
            pending = not await self.state.acquire_slot(
                plan.workflow_id, message.execution_id, plan.max_executions
            )
        options = self.current_options()
        with tracing.execution(message) as message:  # its context: the execution's trace
            view, decision = begin(plan, message, self.clock(), options, pending=pending)
            tracing.finished(view.meta, decision.commands)
            created = await self.state.create(view, "start", decision.commands)
        if not created:
            recorded = await self._recorded_start(message.execution_id)
            return list(recorded.commands if recorded else []), ok(message.execution_id)
        self._keep_view(message.execution_id, view)
        return decision.commands, ok(message.execution_id)


def _remember(recent: OrderedDict[str, T], key: str, value: T) -> None:
    """Put ``key`` last in ``recent``, forgetting the oldest past :data:`PLANS_REMEMBERED`."""
    recent[key] = value
    recent.move_to_end(key)
    if len(recent) > PLANS_REMEMBERED:
        recent.popitem(last=False)


def _loop_hints(deliveries: Sequence[Delivery[ExecutionMessage]]) -> dict[str, int]:
    """Loop node id -> how many of its iterations finished in these messages (each may
    start the next iteration, or complete the loop): what the load prefetches."""
    hints: dict[str, int] = {}
    for delivery in deliveries:
        message = delivery.message
        if isinstance(message, ChildFinished) and message.iteration is not None:
            hints[message.node_id] = hints.get(message.node_id, 0) + 1
    return hints


def _recorded_all(
    pending: _Pending, ids: Sequence[str], records: Mapping[str, Sequence[Command]] | None
) -> bool:
    """Whether every message not refused at the door got a record (a decision that
    changed the state) — what a group decided on a kept view must show to be committed."""
    if records is None:
        return False
    return all(ids[i] in records for i in range(len(ids)) if i not in pending.outcomes)


def _refused(message: StartExecution, refused: StartRefused) -> Outcome:
    return refusal_commands(message, refused), error(refused.reason)


__all__ = ["Outcome", "Transitions", "error", "ok"]
