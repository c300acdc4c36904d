"""The StateStore contract, run on every backend (memory, Redis, a 3-master Redis
Cluster), plus Redis specifics (on a server and on the cluster).

The memory store is the reference semantics. Differences that are part of the design:
the memory store removes a timer when it is claimed (one process, no crash gap), while
Redis leases it; lease expiry, TTLs and pruning are therefore tested on Redis only.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import Redis

from spane.core.ids import timer_id
from spane.schemas.claims import ClaimInfo
from spane.schemas.commands import CancelTimer, Command, ScheduleTimer
from spane.schemas.messages import TaskFailure, TaskResult
from spane.schemas.state import (
    TERMINAL_EXECUTION_STATUSES,
    ErrorInfo,
    ExecutionMeta,
    ExecutionStatus,
    NodeState,
    NodeStatus,
    Timer,
    TimerKind,
    WaitReason,
)
from spane.schemas.view import ExecutionView, MissingNodesError
from spane.state import redis_scripts
from spane.state.base import (
    Applied,
    AttemptRef,
    ClaimOutcome,
    ClaimRequest,
    StateStore,
    TaskClaim,
)
from spane.state.keys import RedisKeys
from spane.state.memory import MemoryStateStore
from spane.state.redis import RedisStateStore
from tests.redis_cluster import unlink_cluster_namespace
from tests.unit.test_serde import sample_commands

RETENTION = 3600.0


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def _unlink_namespace(url: str, namespace: str) -> None:
    client = Redis.from_url(url)
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{namespace}:*", count=500):
            batch.append(key)
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


async def _unlink(url: str, store: RedisStateStore) -> None:
    if store.keys.cluster:
        await unlink_cluster_namespace(url, store.keys.namespace)
    else:
        await _unlink_namespace(url, store.keys.namespace)


async def _redis_store(url: str, clock: FakeClock, **kwargs: Any) -> RedisStateStore:
    namespace = f"spane-test-{uuid.uuid4().hex[:8]}"
    store = RedisStateStore(url, namespace=namespace, retention=RETENTION, clock=clock, **kwargs)
    await store.connect()
    return store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


_URL_FIXTURES = {"redis": "redis_url", "cluster": "redis_cluster_url"}
"""The Redis deployments the contract runs on, by the fixture that gives their URL."""


def _url_of(request: pytest.FixtureRequest, store: RedisStateStore) -> str:
    url: str = request.getfixturevalue(_URL_FIXTURES["cluster" if store.keys.cluster else "redis"])
    return url


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.real),
        pytest.param("cluster", marks=pytest.mark.real),
    ]
)
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore(clock)
        return
    url: str = request.getfixturevalue(_URL_FIXTURES[request.param])
    redis_store = await _redis_store(url, clock)
    try:
        yield redis_store
    finally:
        await redis_store.close()
        await _unlink(url, redis_store)


@pytest.fixture
async def peer(
    request: pytest.FixtureRequest, store: StateStore, clock: FakeClock
) -> AsyncIterator[StateStore]:
    """A second handle on the same state (another replica): own connections for Redis."""
    if not isinstance(store, RedisStateStore):
        yield store
        return
    other = RedisStateStore(
        _url_of(request, store),
        namespace=store.keys.namespace,
        retention=RETENTION,
        clock=clock,
    )
    try:
        yield other
    finally:
        await other.close()


@pytest.fixture(params=["redis", "cluster"])
async def redis_url_of_kind(request: pytest.FixtureRequest) -> str:
    """The URL of a Redis server, then of a Redis Cluster."""
    url: str = request.getfixturevalue(_URL_FIXTURES[request.param])
    return url


@pytest.fixture
async def redis_store(redis_url_of_kind: str, clock: FakeClock) -> AsyncIterator[RedisStateStore]:
    store = await _redis_store(redis_url_of_kind, clock)
    try:
        yield store
    finally:
        await store.close()
        await _unlink(redis_url_of_kind, store)


# ------------------------------------------------------------------ builders


def new_view(
    execution_id: str = "ex-1",
    *,
    workflow_id: str = "wf",
    created_at: float = 100.0,
    status: ExecutionStatus = ExecutionStatus.RUNNING,
    nodes: tuple[str, ...] = ("a", "b"),
) -> ExecutionView:
    meta = ExecutionMeta(
        id=execution_id,
        workflow_id=workflow_id,
        version=2,
        status=status,
        input={"order": [1, 2.5, "x"], "nested": {"k": None}},
        created_at=created_at,
        deadline=created_at + 600.0,
        unsettled=len(nodes),
        active=nodes,
    )
    view = ExecutionView(meta, {})
    for node_id in nodes:
        view.update_node(node_id, status=NodeStatus.RUNNING, attempt=1, input={"n": node_id})
    return view


def tid(name: str, execution_id: str = "ex-1") -> str:
    """A timer id as the core makes them (the execution's id in it: a Redis Cluster
    finds a timer's shard by it)."""
    return timer_id(TimerKind.DELAY, execution_id, name)


def timer(name: str, fire_at: float, execution_id: str = "ex-1") -> Timer:
    return Timer(
        id=tid(name, execution_id),
        execution_id=execution_id,
        kind=TimerKind.DELAY,
        fire_at=fire_at,
        node_id="a",
    )


def result(task_id: str = "ex-1:a:1", ok: bool = True) -> TaskResult:
    return TaskResult(
        task_id=task_id,
        execution_id="ex-1",
        node_id="a",
        attempt=1,
        ok=ok,
        output={"value": 42} if ok else None,
        error=None if ok else TaskFailure(type="ValueError", message="no", retry_after=1.5),
    )


async def load(store: StateStore, execution_id: str) -> ExecutionView | None:
    """The execution's view, as :meth:`StateStore.load_many` reads it."""
    view, _ = (await store.load_many({execution_id: ()}))[execution_id]
    return view


async def loaded(store: StateStore, execution_id: str = "ex-1") -> ExecutionView:
    view = await load(store, execution_id)
    assert view is not None
    return view


async def applied(store: StateStore, execution_id: str, event_id: str) -> Applied | None:
    """The record of one event, if applied, as :meth:`StateStore.load_many` reads it."""
    _, records = (await store.load_many({execution_id: [event_id]}))[execution_id]
    return records.get(event_id)


async def commit(
    store: StateStore, view: ExecutionView, event_id: str, commands: Sequence[Command]
) -> bool:
    """One :meth:`StateStore.commit_each` of one event; False if it conflicted."""
    (committed,) = await store.commit_each([(view, {event_id: commands})])
    return committed


async def claim_one(store: StateStore, task_id: str, worker_id: str, lease: float) -> TaskClaim:
    """One :meth:`StateStore.claim_tasks` request."""
    (answer,) = await store.claim_tasks([ClaimRequest(task_id, worker_id, lease)])
    return answer


async def test_a_claim_is_taken_only_for_the_running_attempt_its_task_id_names(
    store: StateStore,
):
    await store.create(new_view(), "start", [])  # a and b run their attempt 1
    running = AttemptRef("ex-1", "a", 1)
    requests = [
        ClaimRequest("ex-2:a:1", "w1", 10.0, running),  # another execution's task id
        ClaimRequest("ex-1:a:1", "w1", 10.0, running),
        ClaimRequest("ex-1:a:2", "w1", 10.0, AttemptRef("ex-1", "a", 2)),  # not running
        ClaimRequest("ex-1:b:1", "w1", 10.0, running),  # b's task id, a's attempt
    ]
    outcomes = [claim.outcome for claim in await store.claim_tasks(requests)]
    unknown = ClaimOutcome.UNKNOWN
    assert outcomes == [unknown, ClaimOutcome.CLAIMED, unknown, unknown]


# ---------------------------------------------------------------- executions


async def test_create_then_load_round_trips(store: StateStore):
    view = new_view()
    assert await store.create(view, "start", sample_commands())
    assert view.revision == 1

    again = await loaded(store)
    assert again.revision == 1
    assert again.full_meta() == view.meta  # the meta may leave the input to ``input``
    assert again.input == view.input == view.meta.input
    assert again.all_nodes() == view.changed_nodes
    assert again.changed_nodes == {}
    assert await store.get_meta("ex-1") == view.meta
    assert await store.get_nodes("ex-1") == view.changed_nodes


async def test_create_twice_refuses_and_writes_nothing(store: StateStore):
    first = new_view()
    assert await store.create(first, "start", [CancelTimer("one")])
    second = new_view(created_at=999.0, nodes=("z",))
    assert not await store.create(second, "start-again", [CancelTimer("two")])
    assert second.revision == 0

    view = await loaded(store)
    assert view.full_meta() == first.meta
    assert view.all_nodes() == first.changed_nodes
    assert view.revision == 1
    assert await applied(store, "ex-1", "start-again") is None
    recorded = await applied(store, "ex-1", "start")
    assert recorded is not None
    assert list(recorded.commands) == [CancelTimer("one")]


async def test_get_executions_reads_several_in_order_and_skips_unknown_ones(store: StateStore):
    first, second = new_view("ex-1"), new_view("ex-2", nodes=("z",))
    assert await store.create(first, "start", [])
    assert await store.create(second, "start", [])

    found = await store.get_executions(["ex-2", "nope", "ex-1"])

    assert found == [
        (second.meta, second.changed_nodes),
        (first.meta, first.changed_nodes),
    ]
    assert await store.get_executions([]) == []


async def test_unknown_execution_reads_as_absent(store: StateStore):
    assert await load(store, "nope") is None
    assert await store.get_meta("nope") is None
    assert await store.get_nodes("nope") == {}
    assert await applied(store, "nope", "start") is None


async def test_commit_persists_changes_and_bumps_revision(store: StateStore):
    await store.create(new_view(), "start", [])
    view = await loaded(store)
    view.update_node(
        "a",
        status=NodeStatus.FAILED,
        output=[1, {"x": "y"}],
        error=ErrorInfo(type="Boom", message="bad", node_id="a", attempt=1),
        fired=("error", "always"),
        finished_at=120.5,
    )
    view.update_node("c", status=NodeStatus.WAITING, wait=WaitReason.SIGNAL)
    view.update_meta(vars={"total": 3}, unsettled=2, signals={"approval": ("c",)})
    assert await commit(store, view, "result:ex-1:a:1", [CancelTimer("t")])
    assert view.revision == 2

    again = await loaded(store)
    assert again.revision == 2
    assert again.meta == view.meta
    assert again.all_nodes() == view.all_nodes()


async def test_commit_writes_only_the_changed_nodes(store: StateStore):
    created = new_view()
    await store.create(created, "start", [])
    bogus = NodeState(status=NodeStatus.SKIPPED)
    view = ExecutionView(created.meta, {"a": bogus, "b": bogus}, revision=1)
    view.update_node("a", status=NodeStatus.SUCCEEDED, output="done")
    assert await commit(store, view, "e1", [])

    nodes = await store.get_nodes("ex-1")
    assert nodes["a"] == NodeState(status=NodeStatus.SUCCEEDED, output="done")
    assert nodes["b"] == created.changed_nodes["b"]


async def test_commit_many_nodes_at_once(store: StateStore):
    await store.create(new_view(nodes=()), "start", [])
    view = await loaded(store)
    for i in range(1_500):
        view.update_node(f"n{i}", status=NodeStatus.SUCCEEDED, output=i)
    assert await commit(store, view, "fan-in", [])
    nodes = await store.get_nodes("ex-1")
    assert len(nodes) == 1_500
    assert nodes["n1499"].output == 1499


async def test_stale_commit_conflicts_and_changes_nothing(store: StateStore):
    await store.create(new_view(), "start", [])
    winner = await loaded(store)
    loser = await loaded(store)
    winner.update_node("a", status=NodeStatus.SUCCEEDED)
    assert await commit(store, winner, "e-win", [CancelTimer("win")])

    loser.update_node("a", status=NodeStatus.FAILED)
    loser.update_node("b", status=NodeStatus.CANCELLED)
    loser.update_meta(status=ExecutionStatus.FAILED)
    assert not await commit(store, loser, "e-lose", [CancelTimer("lose")])
    assert loser.revision == 1

    after = await loaded(store)
    assert after.revision == 2
    assert after.meta == winner.meta
    assert after.all_nodes() == winner.all_nodes()
    assert await applied(store, "ex-1", "e-lose") is None


async def test_a_commit_of_an_event_applied_before_conflicts_and_changes_nothing(
    store: StateStore,
):
    """A writer deciding on a view it kept (no load, so no applied records) cannot apply
    an event twice: the commit refuses it, and the writer loads."""
    await store.create(new_view(), "start", [])
    view = await loaded(store)
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    assert await commit(store, view, "result:ex-1:a:1", [CancelTimer("first")])
    kept = view.settled(view.revision)
    kept.update_node("b", status=NodeStatus.SUCCEEDED)
    records: dict[str, list[Command]] = {"result:ex-1:b:1": [], "result:ex-1:a:1": []}
    assert await store.commit_each([(kept, records)]) == [False]
    after = await loaded(store)
    assert after.revision == 2
    assert after.node("b").status is NodeStatus.RUNNING
    assert await applied(store, "ex-1", "result:ex-1:b:1") is None
    recorded = await applied(store, "ex-1", "result:ex-1:a:1")
    assert recorded is not None
    assert recorded.commands == [CancelTimer("first")]
    kept = after.settled(after.revision)  # no such event: a kept view commits
    kept.update_node("b", status=NodeStatus.SUCCEEDED)
    assert await store.commit_each([(kept, {"result:ex-1:b:1": []})]) == [True]
    assert (await loaded(store)).node("b").status is NodeStatus.SUCCEEDED


async def test_a_view_of_an_expired_incarnation_cannot_commit_over_a_new_one(
    store: StateStore,
):
    """An orchestrator may keep a view for long; if its execution finished, expired and
    an execution with the same id was created since, that view's revision can match
    the new one's, but it must not write."""
    await store.create(new_view(created_at=100.0), "start", [])
    old = await loaded(store)
    if isinstance(store, RedisStateStore):  # retention expires every key
        await store.client.delete(*store.keys.execution("ex-1").all())
    else:
        assert isinstance(store, MemoryStateStore)
        del store._executions["ex-1"]
    await store.create(new_view(created_at=200.0), "start", [])
    assert old.revision == (await loaded(store)).revision == 1
    old.update_node("a", status=NodeStatus.FAILED)
    assert not await commit(store, old, "e-old", [])
    after = await loaded(store)
    assert after.full_meta().created_at == 200.0
    assert after.node("a").status is NodeStatus.RUNNING
    after.update_node("a", status=NodeStatus.SUCCEEDED)
    assert await commit(store, after, "e-new", [])  # the new incarnation's own view does


async def test_load_many_of_nothing_is_empty(store: StateStore):
    """The orchestrator asks for nothing when every execution of a batch has a kept view."""
    assert await store.load_many({}, {}, {}) == {}


async def test_load_many_reads_the_nodes_asked_for_or_every_node(store: StateStore):
    await store.create(new_view(), "start", [])
    hinted = {"ex-1": ["a", "never-written"]}
    (view, _), (whole, _) = [
        (await store.load_many({"ex-1": []}, nodes=nodes))["ex-1"] for nodes in (hinted, None)
    ]
    assert view is not None
    assert whole is not None
    assert view.node("a") == whole.node("a") != whole.node("never-written")
    assert view.node("never-written") == whole.node("never-written")  # pending
    assert whole.node("b").status is NodeStatus.RUNNING
    if isinstance(store, RedisStateStore):  # reads only what it was asked for
        with pytest.raises(MissingNodesError):
            view.node("b")
    else:  # may load every node
        assert view.node("b") == whole.node("b")
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    assert await commit(store, view, "e1", [])  # a partial view commits what it changed
    after = await loaded(store)
    assert (after.node("a").status, after.node("b").status) == (
        NodeStatus.SUCCEEDED,
        NodeStatus.RUNNING,
    )


async def test_load_many_and_commit_each_cover_several_executions(store: StateStore):
    for name in ("ex-1", "ex-2", "ex-3"):
        await store.create(new_view(name), "start", [CancelTimer(name)])
    loaded_views = await store.load_many({"ex-1": ["start", "e9"], "ex-2": [], "nope": ["x"]})

    assert set(loaded_views) == {"ex-1", "ex-2", "nope"}
    assert loaded_views["nope"] == (None, {})
    one, one_applied = loaded_views["ex-1"]
    two, two_applied = loaded_views["ex-2"]
    assert one is not None
    assert two is not None
    assert list(one_applied) == ["start"]
    assert list(one_applied["start"].commands) == [CancelTimer("ex-1")]
    assert two_applied == {}
    assert one.node("a") == new_view("ex-1").changed_nodes["a"]

    three = await loaded(store, "ex-3")
    winner = await loaded(store, "ex-3")
    assert await commit(store, winner, "won", [])  # ex-3 moves on: the stale view conflicts
    one.update_node("a", status=NodeStatus.SUCCEEDED)
    two.update_node("b", status=NodeStatus.FAILED)
    three.update_node("a", status=NodeStatus.CANCELLED)

    committed = await store.commit_each(
        [(one, {"e1": [CancelTimer("1")]}), (three, {"e3": []}), (two, {"e2": []})]
    )

    assert committed == [True, False, True]
    assert (one.revision, two.revision, three.revision) == (2, 2, 1)
    assert (await store.get_nodes("ex-1"))["a"].status == NodeStatus.SUCCEEDED
    assert (await store.get_nodes("ex-2"))["b"].status == NodeStatus.FAILED
    assert (await store.get_nodes("ex-3"))["a"].status == NodeStatus.RUNNING
    assert await applied(store, "ex-3", "e3") is None
    recorded = await applied(store, "ex-1", "e1")
    assert recorded is not None
    assert list(recorded.commands) == [CancelTimer("1")]
    assert await store.commit_each([]) == []


async def test_commit_of_unknown_execution_conflicts(store: StateStore):
    view = new_view("ghost")
    view.revision = 1
    assert not await commit(store, view, "e1", [])
    assert await load(store, "ghost") is None


async def test_applied_returns_the_recorded_commands(store: StateStore):
    commands = sample_commands()
    await store.create(new_view(), "start", commands)
    view = await loaded(store)
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    assert await commit(store, view, "result:ex-1:a:1", commands[:3])

    start = await applied(store, "ex-1", "start")
    assert start is not None
    assert list(start.commands) == commands
    replay = await applied(store, "ex-1", "result:ex-1:a:1")
    assert replay is not None
    assert list(replay.commands) == commands[:3]
    assert await applied(store, "ex-1", "result:ex-1:b:1") is None


async def test_list_executions_newest_first_with_workflow_filter(store: StateStore):
    for execution_id, workflow_id, created_at in [
        ("e1", "alpha", 10.0),
        ("e2", "beta", 30.0),
        ("e3", "alpha", 20.0),
        ("e4", "alpha", 40.0),
    ]:
        view = new_view(execution_id, workflow_id=workflow_id, created_at=created_at)
        assert await store.create(view, "start", [])

    assert [m.id for m in await store.list_executions()] == ["e4", "e2", "e3", "e1"]
    assert [m.id for m in await store.list_executions("alpha")] == ["e4", "e3", "e1"]
    assert [m.id for m in await store.list_executions("alpha", limit=2)] == ["e4", "e3"]
    assert [m.id for m in await store.list_executions(limit=1)] == ["e4"]
    assert await store.list_executions("gamma") == []
    listed = await store.list_executions("beta")
    assert listed == [await store.get_meta("e2")]


# -------------------------------------------------------------------- timers


async def test_no_timers(store: StateStore):
    assert await store.next_timer_at() is None
    assert await store.claim_due_timers(1e12, 10, 30.0) == []
    await store.ack_timers([])
    await store.update_timers([], [])


async def test_claim_takes_due_timers_only_in_fire_order(store: StateStore):
    t1, t2, t3 = timer("t1", 10.0), timer("t2", 20.0), timer("t3", 30.0)
    await store.update_timers([t3, t1, t2], [])
    assert await store.next_timer_at() == 10.0

    assert await store.claim_due_timers(5.0, 10, 30.0) == []
    claimed = await store.claim_due_timers(20.0, 10, 30.0)
    assert claimed == [t1, t2]
    assert await store.claim_due_timers(20.0, 10, 30.0) == []
    await store.ack_timers(claimed)

    assert await store.next_timer_at() == 30.0
    assert await store.claim_due_timers(1_000.0, 10, 30.0) == [t3]


async def test_claim_respects_the_limit(store: StateStore):
    timers = [timer(f"t{i}", float(i)) for i in range(5)]
    await store.update_timers(timers, [])
    first = await store.claim_due_timers(100.0, 2, 30.0)
    assert first == timers[:2]
    second = await store.claim_due_timers(100.0, 10, 30.0)
    assert second == timers[2:]
    assert await store.claim_due_timers(100.0, 0, 30.0) == []


async def test_scheduling_the_same_id_replaces(store: StateStore):
    await store.update_timers([timer("t1", 10.0)], [])
    moved = timer("t1", 50.0)
    await store.update_timers([moved], [])
    assert await store.next_timer_at() == 50.0
    assert await store.claim_due_timers(20.0, 10, 30.0) == []
    assert await store.claim_due_timers(50.0, 10, 30.0) == [moved]


async def test_cancel_removes_timers(store: StateStore):
    t1, t2 = timer("t1", 10.0), timer("t2", 20.0)
    await store.update_timers([t1, t2], [])
    await store.update_timers([], [tid("t1"), tid("missing")])
    assert await store.next_timer_at() == 20.0
    assert await store.claim_due_timers(100.0, 10, 30.0) == [t2]


async def test_create_and_commit_store_the_timers_their_commands_decide(
    store: StateStore, peer: StateStore
):
    deadline, step, flicker = timer("deadline", 50.0), timer("step", 20.0), timer("f", 5.0)
    assert await store.create(new_view(), "start", [ScheduleTimer(deadline)])
    assert await store.next_timer_at() == 50.0
    view = await loaded(store)
    stale = await loaded(peer)  # another replica's view of the same revision
    decided: list[Command] = [
        ScheduleTimer(step),
        CancelTimer(deadline.id),
        ScheduleTimer(flicker),
        CancelTimer(flicker.id),  # the last word per timer wins
    ]
    assert await commit(store, view, "e1", decided)
    assert not await commit(peer, stale, "e1", [ScheduleTimer(timer("lost", 1.0))])
    assert await store.next_timer_at() == 20.0  # a conflicting commit stored no timer
    assert await store.claim_due_timers(100.0, 10, 30.0) == [step]
    await store.ack_timers([step])
    assert await store.next_timer_at() is None


async def test_update_timers_cancels_and_schedules_in_one_call(store: StateStore):
    t1, t2, t3 = timer("t1", 10.0), timer("t2", 20.0), timer("t3", 30.0)
    await store.update_timers([t1, t2], [])
    t2_moved = timer("t2", 40.0)

    await store.update_timers(
        [t3, t2_moved], [tid("t1"), tid("t2"), tid("missing")]
    )  # t2 in both: scheduled
    await store.update_timers([], [])

    assert await store.next_timer_at() == 30.0
    assert await store.claim_due_timers(100.0, 10, 30.0) == [t3, t2_moved]


async def test_acked_timers_are_gone(store: StateStore):
    await store.update_timers([timer("t1", 10.0)], [])
    claimed = await store.claim_due_timers(10.0, 10, 30.0)
    await store.ack_timers(claimed)
    assert await store.next_timer_at() is None
    assert await store.claim_due_timers(1e9, 10, 30.0) == []


async def test_ack_after_reschedule_keeps_the_new_timer(store: StateStore):
    await store.update_timers([timer("t1", 10.0)], [])
    claimed = await store.claim_due_timers(10.0, 10, 30.0)
    assert [t.id for t in claimed] == [tid("t1")]
    rescheduled = timer("t1", 100.0)
    await store.update_timers([rescheduled], [])
    await store.ack_timers(claimed)

    assert await store.next_timer_at() == 100.0
    assert await store.claim_due_timers(100.0, 10, 30.0) == [rescheduled]


async def test_concurrent_claimers_never_share_a_timer(store: StateStore, peer: StateStore):
    timers = [timer(f"t{i:03}", float(i)) for i in range(300)]
    await store.update_timers(timers, [])
    claims = await asyncio.gather(
        *(claimer.claim_due_timers(1_000.0, 40, 30.0) for claimer in [store, peer] * 5)
    )
    ids = [t.id for batch in claims for t in batch]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == [t.id for t in timers][: len(ids)]
    assert len(ids) == 300


# --------------------------------------------------- idempotency, task claims


async def test_start_keys_bind_once(store: StateStore):
    assert await store.claim_start_key("wf", "order-1", "ex-1") == "ex-1"
    assert await store.claim_start_key("wf", "order-1", "ex-2") == "ex-1"
    assert await store.claim_start_key("wf", "order-1", "ex-1") == "ex-1"
    assert await store.claim_start_key("other", "order-1", "ex-3") == "ex-3"
    assert await store.claim_start_key("wf", "order-2", "ex-4") == "ex-4"


async def test_slots_up_to_the_limit_then_a_fifo_queue(store: StateStore):
    assert await store.acquire_slot("wf", "e1", 2)
    assert await store.acquire_slot("wf", "e2", 2)
    assert await store.acquire_slot("wf", "e1", 2)  # already holding one
    for queued in ("e3", "e4", "e5"):
        assert not await store.acquire_slot("wf", queued, 2)
    assert not await store.acquire_slot("wf", "e3", 2)  # still queued, not twice
    assert await store.acquire_slot("other", "x1", 1)  # per workflow

    assert await store.release_slot("wf", "e1", 2) == ["e3"]
    assert await store.acquire_slot("wf", "e3", 2)
    assert await store.release_slot("wf", "e4", 2) == []  # left the queue
    assert await store.release_slot("wf", "e2", 2) == ["e5"]
    assert await store.release_slot("wf", "e5", 2) == []
    assert await store.release_slot("wf", "e3", 2) == []
    assert await store.acquire_slot("wf", "e6", 2)


async def test_a_freed_slot_goes_to_the_queue_before_newcomers(store: StateStore):
    assert await store.acquire_slot("wf", "e1", 1)
    assert not await store.acquire_slot("wf", "e2", 1)
    assert await store.release_slot("wf", "e1", 1) == ["e2"]
    assert not await store.acquire_slot("wf", "e3", 1)
    assert not await store.acquire_slot("wf", "e4", 1)
    # a raised limit promotes as many as fit, oldest first
    assert await store.release_slot("wf", "e2", 3) == ["e3", "e4"]
    assert await store.release_slot("wf", "never-seen", 3) == []


async def test_task_claims(store: StateStore, clock: FakeClock):
    claim = await claim_one(store, "ex-1:a:1", "w1", 10.0)
    assert claim.outcome is ClaimOutcome.CLAIMED
    assert claim.result is None
    assert (await claim_one(store, "ex-1:a:1", "w2", 10.0)).outcome is ClaimOutcome.RUNNING
    clock.advance(8.0)
    # the holder renews (heartbeat); the lease now runs to 18s from the start
    assert (await claim_one(store, "ex-1:a:1", "w1", 10.0)).outcome is ClaimOutcome.CLAIMED
    clock.advance(8.0)
    assert (await claim_one(store, "ex-1:a:1", "w2", 10.0)).outcome is ClaimOutcome.RUNNING
    assert (await claim_one(store, "ex-1:b:1", "w2", 10.0)).outcome is ClaimOutcome.CLAIMED


async def test_expired_task_claim_can_be_taken_over(store: StateStore, clock: FakeClock):
    assert (await claim_one(store, "ex-1:a:1", "w1", 10.0)).outcome is ClaimOutcome.CLAIMED
    clock.advance(10.5)
    assert (await claim_one(store, "ex-1:a:1", "w2", 10.0)).outcome is ClaimOutcome.CLAIMED
    assert (await claim_one(store, "ex-1:a:1", "w1", 10.0)).outcome is ClaimOutcome.RUNNING


@pytest.mark.parametrize("ok", [True, False])
async def test_finished_task_returns_its_result(store: StateStore, ok: bool):
    done = result(ok=ok)
    await claim_one(store, done.task_id, "w1", 10.0)
    await store.finish_tasks([done])
    for worker in ("w1", "w2"):
        claim = await claim_one(store, done.task_id, worker, 10.0)
        assert claim.outcome is ClaimOutcome.FINISHED
        assert claim.result == done


async def test_finish_without_claim_is_finished(store: StateStore):
    done = result("ex-1:z:3")
    await store.finish_tasks([done])
    claim = await claim_one(store, "ex-1:z:3", "w1", 10.0)
    assert claim == TaskClaim(ClaimOutcome.FINISHED, done)


async def test_get_claim_reports_holder_lease_and_result(store: StateStore, clock: FakeClock):
    assert await store.get_claim("ex-1:a:1") is None
    await claim_one(store, "ex-1:a:1", "w1", 10.0)
    assert await store.get_claim("ex-1:a:1") == ClaimInfo("w1", clock.now + 10.0)
    done = result()
    await store.finish_tasks([done])
    assert await store.get_claim("ex-1:a:1") == ClaimInfo("w1", clock.now + 10.0, done)
    unclaimed = result("ex-1:b:1")
    await store.finish_tasks([unclaimed])
    assert await store.get_claim("ex-1:b:1") == ClaimInfo("", 0.0, unclaimed)


async def test_claim_tasks_answers_each_request_in_order(store: StateStore, clock: FakeClock):
    done = result("ex-1:done:1")
    await store.finish_tasks([done])
    await store.cancel_tasks(["ex-1:cancelled:1"])
    await claim_one(store, "ex-1:held:1", "w2", 10.0)
    await claim_one(store, "ex-1:stale:1", "w2", 1.0)
    await claim_one(store, "ex-1:mine:1", "w1", 1.0)
    clock.advance(2.0)

    claims = await store.claim_tasks(
        [
            ClaimRequest("ex-1:fresh:1", "w1", 10.0),
            ClaimRequest("ex-1:done:1", "w1", 10.0),
            ClaimRequest("ex-1:cancelled:1", "w1", 10.0),
            ClaimRequest("ex-1:held:1", "w1", 10.0),
            ClaimRequest("ex-1:stale:1", "w1", 30.0),
            ClaimRequest("ex-1:mine:1", "w1", 5.0),
            ClaimRequest("ex-1:fresh:1", "w2", 10.0),  # after the first request of the batch
        ]
    )
    assert claims == [
        TaskClaim(ClaimOutcome.CLAIMED),
        TaskClaim(ClaimOutcome.FINISHED, done),
        TaskClaim(ClaimOutcome.CANCELLED),
        TaskClaim(ClaimOutcome.RUNNING),
        TaskClaim(ClaimOutcome.CLAIMED),
        TaskClaim(ClaimOutcome.CLAIMED),
        TaskClaim(ClaimOutcome.RUNNING),
    ]
    # each request's own lease
    assert await store.get_claim("ex-1:fresh:1") == ClaimInfo("w1", clock.now + 10.0)
    assert await store.get_claim("ex-1:stale:1") == ClaimInfo("w1", clock.now + 30.0)
    assert await store.get_claim("ex-1:mine:1") == ClaimInfo("w1", clock.now + 5.0)
    assert await store.get_claim("ex-1:held:1") == ClaimInfo("w2", clock.now + 8.0)


async def test_claim_tasks_renews_a_batch_of_claims(store: StateStore, clock: FakeClock):
    ids = [f"ex-1:n{i}:1" for i in range(5)]
    assert (
        await store.claim_tasks([ClaimRequest(i, "w1", 10.0) for i in ids])
        == [TaskClaim(ClaimOutcome.CLAIMED)] * 5
    )
    clock.advance(8.0)
    await store.claim_tasks([ClaimRequest(i, "w1", 10.0) for i in ids])  # the renewal
    clock.advance(8.0)
    for claim in await store.claim_tasks([ClaimRequest(i, "w2", 10.0) for i in ids]):
        assert claim.outcome is ClaimOutcome.RUNNING


async def test_finish_tasks_stores_every_result(store: StateStore, clock: FakeClock):
    first, second = result("ex-1:a:1"), result("ex-1:b:1", ok=False)
    await claim_one(store, first.task_id, "w1", 10.0)
    await store.finish_tasks([first, second])
    assert await store.get_claim(first.task_id) == ClaimInfo("w1", clock.now + 10.0, first)
    assert await store.get_claim(second.task_id) == ClaimInfo("", 0.0, second)
    claims = await store.claim_tasks(
        [ClaimRequest(first.task_id, "w2", 10.0), ClaimRequest(second.task_id, "w1", 10.0)]
    )
    assert claims == [
        TaskClaim(ClaimOutcome.FINISHED, first),
        TaskClaim(ClaimOutcome.FINISHED, second),
    ]
    await store.finish_tasks([first])  # storing a result again (a re-publish) changes nothing
    assert await claim_one(store, first.task_id, "w1", 10.0) == TaskClaim(
        ClaimOutcome.FINISHED, first
    )


async def test_empty_task_batches(store: StateStore):
    assert await store.claim_tasks([]) == []
    await store.finish_tasks([])
    assert await store.get_claim("ex-1:a:1") is None


async def test_concurrent_batch_claimers_never_share_a_task(store: StateStore, peer: StateStore):
    ids = [f"ex-1:n{i}:1" for i in range(40)]
    workers = [f"w{i}" for i in range(6)]
    batches = await asyncio.gather(
        *(
            claimer.claim_tasks([ClaimRequest(i, worker, 10.0) for i in rng_order(ids, seed)])
            for seed, (claimer, worker) in enumerate(zip([store, peer] * 3, workers, strict=True))
        )
    )
    winners: dict[str, list[str]] = {task_id: [] for task_id in ids}
    for seed, (worker, claims) in enumerate(zip(workers, batches, strict=True)):
        for task_id, claim in zip(rng_order(ids, seed), claims, strict=True):
            if claim.outcome is ClaimOutcome.CLAIMED:
                winners[task_id].append(worker)
    assert all(len(holders) == 1 for holders in winners.values()), winners
    for task_id, (holder,) in winners.items():
        info = await store.get_claim(task_id)
        assert info is not None
        assert info.worker_id == holder


def rng_order(ids: list[str], seed: int) -> list[str]:
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    return shuffled


# ------------------------------------------------------------------ archive


async def test_finished_executions_are_queued_for_the_archive_until_marked(
    store: StateStore,
):
    for name, finished_at in (("ex-1", 200.0), ("ex-2", 100.0), ("live", None)):
        view = new_view(name)
        assert await store.create(view, "start", [])
        if finished_at is not None:
            view.update_meta(status=ExecutionStatus.SUCCEEDED, finished_at=finished_at)
            assert await commit(store, view, "finish", [])
    assert await store.claim_unarchived(150.0, 10, 300.0) == ["ex-2"]  # due by finish time
    assert await store.claim_unarchived(250.0, 10, 300.0) == ["ex-1"]  # ex-2 is leased
    assert await store.claim_unarchived(250.0, 10, 300.0) == []
    assert sorted(await store.claim_unarchived(1000.0, 10, 30.0)) == ["ex-1", "ex-2"]
    await store.mark_archived(["ex-1", "ex-2"])
    assert await store.claim_unarchived(1e12, 10, 30.0) == []


# ------------------------------------------------------------- Redis specifics


async def _pttls(store: RedisStateStore, execution_id: str) -> list[int]:
    return [await store.client.pttl(key) for key in store.keys.execution(execution_id).all()]


def _expected_keys(keys: RedisKeys) -> set[str]:
    """The keys of the layout test's state: one execution, a timer, a start key, a
    claim and a slot (with a queue), as :mod:`spane.state.keys` lays them out."""
    ns = keys.namespace
    slots = {f"{ns}:start:wf:k", f"{ns}:slots:{{wf}}", f"{ns}:slots:{{wf}}:queue"}
    if not keys.cluster:
        return slots | {
            f"{ns}:{{ex-1}}:meta",
            f"{ns}:{{ex-1}}:nodes",
            f"{ns}:{{ex-1}}:applied",
            f"{ns}:{{ex-1}}:applied-log",
            f"{ns}:executions",
            f"{ns}:executions:wf",
            f"{ns}:timers",
            f"{ns}:timer-data",
            f"{ns}:claim:ex-1:a:1",
        }
    tag = f"{ns}:{{{keys.shard_tag('ex-1')}}}"
    return slots | {
        f"{tag}:e:ex-1:meta",
        f"{tag}:e:ex-1:nodes",
        f"{tag}:e:ex-1:applied",
        f"{tag}:e:ex-1:applied-log",
        f"{tag}:executions",
        f"{tag}:executions:wf",
        f"{tag}:timers",
        f"{tag}:timer-data",
        f"{tag}:claim:ex-1:a:1",
    }


@pytest.mark.real
async def test_redis_key_layout(redis_store: RedisStateStore):
    ns = redis_store.keys.namespace
    await redis_store.create(new_view(), "start", [])
    await redis_store.update_timers([timer("t1", 10.0)], [])
    await redis_store.claim_start_key("wf", "k", "ex-1")
    await claim_one(redis_store, "ex-1:a:1", "w1", 10.0)
    await redis_store.acquire_slot("wf", "ex-1", 1)
    await redis_store.acquire_slot("wf", "ex-2", 1)
    keys = {key.decode() async for key in redis_store.client.scan_iter(match=f"{ns}:*")}
    assert keys == _expected_keys(redis_store.keys)
    meta = await redis_store.client.hgetall(redis_store.keys.execution("ex-1").meta)
    assert set(meta) == {b"meta", b"revision", b"input", b"created"}
    assert meta[b"revision"] == b"1"


@pytest.mark.real
async def test_redis_the_input_is_written_once_apart_and_read_back_everywhere(
    redis_store: RedisStateStore,
):
    """A commit does not rewrite the execution's input (it can be large, and a loop's
    parent commits once per batch of iterations): the create stores it apart."""
    created = new_view()
    expected = created.meta.input
    await redis_store.create(created, "start", [])
    key = redis_store.keys.execution("ex-1").meta
    view = await loaded(redis_store)
    assert view.meta.input is None  # not decoded with the meta
    assert view.input == expected
    # what a view holds of its own is counted (the orchestrator bounds the views it keeps)
    size = len(json.dumps(expected, separators=(",", ":")))
    assert created.held_bytes > size
    assert view.held_bytes > size
    held = view.held_bytes
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    view.update_meta(vars={"x": 1})
    assert await commit(redis_store, view, "e1", [])
    assert view.held_bytes > held
    kept = view.settled(view.revision)
    kept.update_meta(vars={"x": 2})
    assert await redis_store.commit_each([(kept, {"e2": []})]) == [True]
    raw_meta, raw_input = await redis_store.client.hmget(key, ["meta", "input"])
    assert raw_meta is not None
    assert raw_input is not None
    assert "input" not in json.loads(raw_meta)
    assert json.loads(raw_input) == expected
    meta = await redis_store.get_meta("ex-1")
    assert meta is not None
    assert (meta.input, meta.vars) == (expected, {"x": 2})
    assert [m.input for m in await redis_store.list_executions()] == [expected]
    assert [m.input for m, _ in await redis_store.get_executions(["ex-1"])] == [expected]


@pytest.mark.real
async def test_redis_an_execution_stored_before_the_input_was_kept_apart_keeps_its_input(
    redis_store: RedisStateStore,
):
    """Executions created by an earlier version hold the input in their meta JSON."""
    legacy = new_view().meta
    key = redis_store.keys.execution("ex-1").meta
    await redis_store.client.hset(key, mapping={"meta": legacy.model_dump_json(), "revision": 1})
    view = await loaded(redis_store)
    assert view.input == legacy.input
    view.update_meta(vars={"x": 1})
    assert await commit(redis_store, view, "e1", [])
    raw_meta = await redis_store.client.hget(key, "meta")
    assert raw_meta is not None
    assert json.loads(raw_meta)["input"] == legacy.input
    meta = await redis_store.get_meta("ex-1")
    assert meta is not None
    assert meta.input == legacy.input


@pytest.mark.real
async def test_redis_a_finished_execution_expires_only_once_archived(
    redis_store: RedisStateStore,
):
    await redis_store.create(new_view(), "start", [])
    view = await loaded(redis_store)
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    assert await commit(redis_store, view, "e1", [])
    assert await _pttls(redis_store, "ex-1") == [-1, -1, -1, -1]

    view.update_meta(status=ExecutionStatus.SUCCEEDED, finished_at=200.0)
    assert await commit(redis_store, view, "e2", [])
    assert await _pttls(redis_store, "ex-1") == [-1, -1, -1, -1]  # not archived yet
    assert await redis_store.claim_unarchived(200.0, 10, 30.0) == ["ex-1"]
    await redis_store.mark_archived(["ex-1"])
    for ttl in await _pttls(redis_store, "ex-1"):
        assert 0 < ttl <= RETENTION * 1000
    client, shard = redis_store.client, redis_store.keys.execution("ex-1").shard
    assert await client.pttl(shard.executions) == -1
    assert await client.pttl(shard.workflow_executions("wf")) == -1
    assert await client.exists(shard.to_archive) == 0


@pytest.mark.real
@pytest.mark.parametrize("status", list(ExecutionStatus))
async def test_redis_create_in_a_terminal_status_is_queued_for_the_archive(
    redis_store: RedisStateStore, status: ExecutionStatus
):
    await redis_store.create(new_view(status=status), "start", [])
    assert await _pttls(redis_store, "ex-1") == [-1, -1, -1, -1]
    queued = await redis_store.claim_unarchived(1e12, 10, 30.0)
    assert queued == (["ex-1"] if status in TERMINAL_EXECUTION_STATUSES else [])


@pytest.mark.real
async def test_redis_unacked_timer_is_due_again_after_its_lease(redis_store: RedisStateStore):
    t1 = timer("t1", 10.0)
    await redis_store.update_timers([t1], [])
    assert await redis_store.claim_due_timers(10.0, 10, 5.0) == [t1]
    assert await redis_store.next_timer_at() == 15.0
    assert await redis_store.claim_due_timers(14.9, 10, 5.0) == []
    # the claimer died: another replica gets the same timer (same fire_at, same event id)
    assert await redis_store.claim_due_timers(15.0, 10, 5.0) == [t1]
    await redis_store.ack_timers([t1])
    assert await redis_store.next_timer_at() is None


@pytest.mark.real
async def test_redis_cancelled_while_claimed_stays_cancelled(redis_store: RedisStateStore):
    await redis_store.update_timers([timer("t1", 10.0)], [])
    claimed = await redis_store.claim_due_timers(10.0, 10, 5.0)
    await redis_store.update_timers([], [tid("t1")])
    await redis_store.ack_timers(claimed)
    assert await redis_store.claim_due_timers(100.0, 10, 5.0) == []


@pytest.mark.real
async def test_redis_idempotency_keys_and_claims_expire(redis_store: RedisStateStore):
    client, keys = redis_store.client, redis_store.keys
    await redis_store.claim_start_key("wf", "k", "ex-1")
    assert 0 < await client.pttl(keys.start("wf", "k")) <= RETENTION * 1000
    await claim_one(redis_store, "ex-1:a:1", "w1", 10.0)
    assert 0 < await client.pttl(keys.claim("ex-1:a:1")) <= RETENTION * 1000
    await redis_store.finish_tasks([result("ex-1:b:1")])
    assert 0 < await client.pttl(keys.claim("ex-1:b:1")) <= RETENTION * 1000


@pytest.mark.real
async def test_redis_batches_of_claims_and_results_expire(redis_store: RedisStateStore):
    client, keys = redis_store.client, redis_store.keys
    await redis_store.claim_tasks([ClaimRequest("ex-1:a:1", "w1", 10.0)])
    await redis_store.finish_tasks([result("ex-1:b:1")])
    for task_id in ("ex-1:a:1", "ex-1:b:1"):
        assert 0 < await client.pttl(keys.claim(task_id)) <= RETENTION * 1000


@pytest.mark.real
async def test_redis_claim_tasks_loads_its_script_when_the_server_lost_it(
    redis_store: RedisStateStore,
):
    """A batch goes out without the pipeline's SCRIPT EXISTS check; NOSCRIPT replies (a
    restarted or flushed server) load the script and run those calls again, once."""
    await redis_store.finish_tasks([result("ex-1:done:1")])
    await redis_store.client.script_flush()  # other clients reload their scripts likewise
    claims = await redis_store.claim_tasks(
        [ClaimRequest("ex-1:a:1", "w1", 10.0), ClaimRequest("ex-1:done:1", "w1", 10.0)]
    )
    assert claims == [
        TaskClaim(ClaimOutcome.CLAIMED),
        TaskClaim(ClaimOutcome.FINISHED, result("ex-1:done:1")),
    ]
    assert (await claim_one(redis_store, "ex-1:a:1", "w2", 10.0)).outcome is ClaimOutcome.RUNNING


@pytest.mark.real
async def test_redis_a_timer_redis_refuses_aborts_the_commit_before_any_write(
    redis_store: RedisStateStore,
):
    """The scripts write timers first: a score Redis refuses (here forged past the
    store's own check) aborts the commit with nothing written, not half of it."""
    await redis_store.create(new_view(), "start", [])
    view = await loaded(redis_store)
    view.update_node("a", status=NodeStatus.SUCCEEDED)
    keys, args = redis_store._commit_call(view, {"e1": [ScheduleTimer(timer("t", 123.5))]})
    args[args.index("123.5")] = "nan"
    with pytest.raises(redis.exceptions.ResponseError):
        await redis_store.client.eval(redis_scripts.COMMIT, len(keys), *keys, *args)
    after = await loaded(redis_store)
    assert after.revision == view.revision
    assert after.node("a").status is NodeStatus.RUNNING
    assert await applied(redis_store, "ex-1", "e1") is None
    assert await redis_store.next_timer_at() is None


@pytest.mark.real
async def test_redis_listing_prunes_expired_executions(redis_store: RedisStateStore):
    for execution_id, created_at in [("e1", 1.0), ("e2", 2.0), ("e3", 3.0)]:
        await redis_store.create(new_view(execution_id, created_at=created_at), "start", [])
    client, keys = redis_store.client, redis_store.keys
    await client.unlink(keys.execution("e2").meta, keys.execution("e3").meta)  # "expired"

    assert [m.id for m in await redis_store.list_executions("wf", limit=1)] == ["e1"]
    shard = keys.execution("e1").shard
    for index in (shard.executions, shard.workflow_executions("wf")):
        assert await client.zrange(index, 0, -1) == [b"e1"]


@pytest.mark.real
async def test_redis_applied_records_are_bounded(redis_url_of_kind: str, clock: FakeClock):
    store = await _redis_store(redis_url_of_kind, clock, max_applied=3)
    try:
        await store.create(new_view(), "start", [])
        view = await loaded(store)
        for i in range(4):
            view.update_node("a", attempt=i)
            assert await commit(store, view, f"e{i}", [CancelTimer(str(i))])
        assert await applied(store, "ex-1", "start") is None
        assert await applied(store, "ex-1", "e0") is None
        for i in (1, 2, 3):
            assert await applied(store, "ex-1", f"e{i}") is not None
        assert await store.client.llen(store.keys.execution("ex-1").applied_log) == 3
    finally:
        await store.close()
        await _unlink(redis_url_of_kind, store)


@pytest.mark.real
async def test_redis_recreate_after_expiry_starts_clean(redis_store: RedisStateStore):
    await redis_store.create(new_view(), "start", [CancelTimer("old")])
    view = await loaded(redis_store)
    view.update_node("z", status=NodeStatus.SUCCEEDED)
    assert await commit(redis_store, view, "old-event", [])
    await redis_store.client.unlink(redis_store.keys.execution("ex-1").meta)  # expired first

    fresh = new_view(nodes=("a",))
    assert await redis_store.create(fresh, "start", [])
    assert (await loaded(redis_store)).all_nodes() == fresh.changed_nodes
    assert await applied(redis_store, "ex-1", "old-event") is None


async def test_redis_connect_to_a_dead_server_fails():
    store = RedisStateStore("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await store.connect()
    finally:
        await store.close()


@pytest.mark.real
async def test_redis_a_cancelled_call_always_raises(redis_store: RedisStateStore):
    """redis-py's ``wait_for`` can swallow a cancel on Python < 3.12; the store re-raises it.

    Without that, a cancelled polling loop (the orchestrator's timer loop) runs on forever.
    """
    rng = random.Random(7)

    async def poll() -> int:
        await redis_store.claim_due_timers(1_000.0, 10, 30.0)
        await redis_store.next_timer_at()
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    outcomes = {"finished first": 0, "cancelled": 0}
    for _ in range(300):
        task = asyncio.create_task(poll())
        await asyncio.sleep(rng.random() * 0.002)
        task.cancel()
        try:
            assert await task == 0, "the call went on after its task was cancelled"
            outcomes["finished first"] += 1
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
    assert outcomes["cancelled"] > 0
