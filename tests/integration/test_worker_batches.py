"""The worker's batched claims and results, on the memory bus and each state store.

A batch of deliveries is claimed in one ``claim_tasks`` call (per group admitted while
slots were free), and results are stored with ``finish_tasks`` before they are published.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from spane import TaskRegistry
from spane.bus.base import Delivery
from spane.bus.memory import MemoryBus
from spane.schemas.messages import InboxMessage, TaskMessage, TaskResult
from spane.schemas.state import ExecutionMeta, NodeStatus
from spane.schemas.view import ExecutionView
from spane.state.base import ClaimRequest, StateStore, TaskClaim
from spane.state.memory import MemoryStateStore
from spane.state.redis import RedisStateStore
from spane.workers.runtime import Worker
from tests.integration.test_state_contract import _unlink_namespace
from tests.scenarios.helpers import eventually

WAIT = 5.0


class RecordingMemoryStore(MemoryStateStore):
    """Records the task ids of each batch call (an override of public methods)."""

    def __init__(self) -> None:
        super().__init__()
        self.claimed: list[list[str]] = []
        self.finished: list[list[str]] = []

    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        self.claimed.append([request.task_id for request in requests])
        return await super().claim_tasks(requests)

    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        self.finished.append([result.task_id for result in results])
        await super().finish_tasks(results)


class RecordingRedisStore(RedisStateStore):
    """:class:`RecordingMemoryStore` on Redis."""

    def __init__(self, url: str, namespace: str) -> None:
        super().__init__(url, namespace=namespace)
        self.claimed: list[list[str]] = []
        self.finished: list[list[str]] = []

    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        self.claimed.append([request.task_id for request in requests])
        return await super().claim_tasks(requests)

    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        self.finished.append([result.task_id for result in results])
        await super().finish_tasks(results)


Recording = RecordingMemoryStore | RecordingRedisStore


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.real)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Recording]:
    if request.param == "memory":
        yield RecordingMemoryStore()
        return
    url: str = request.getfixturevalue("redis_url")
    redis_store = RecordingRedisStore(url, f"spane-test-{uuid.uuid4().hex[:8]}")
    try:
        yield redis_store
    finally:
        await redis_store.close()
        await _unlink_namespace(url, redis_store.keys.namespace)


class Inbox:
    """Collects what workers publish to the orchestrator's inbox; checks each result
    was stored before it was published."""

    def __init__(self, bus: MemoryBus, state: StateStore) -> None:
        self.bus = bus
        self.state = state
        self.results: list[TaskResult] = []
        self.unstored: list[str] = []
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        self.subscription = await self.bus.consume_inbox(self._on_batch, prefetch=100)

    async def _on_batch(self, deliveries: Sequence[Delivery[InboxMessage]]) -> None:
        for delivery in deliveries:
            message = delivery.message
            if isinstance(message, TaskResult):
                claim = await self.state.get_claim(message.task_id)
                if claim is None or claim.result != message:
                    self.unstored.append(message.task_id)
                self.results.append(message)
        self._arrived.set()

    async def wait_for(self, count: int) -> list[TaskResult]:
        async with asyncio.timeout(WAIT):
            while len(self.results) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.results


def task(name: str, function: str = "work") -> TaskMessage:
    return TaskMessage(
        task_id=f"ex-1:{name}:1",
        execution_id="ex-1",
        workflow_id="wf",
        version=1,
        node_id=name,
        type="function",
        attempt=1,
        input={"name": name},
        function=function,
    )


def done(name: str) -> TaskResult:
    return TaskResult(
        task_id=f"ex-1:{name}:1",
        execution_id="ex-1",
        node_id=name,
        attempt=1,
        ok=True,
        output={"stored": name},
    )


NODES = (
    "fresh",
    "finished",
    "cancelled",
    "overtaken",
    "dup",
    "work",
    *(f"t{i}" for i in range(8)),
    *(f"next{i}" for i in range(8)),
)


@pytest.fixture(autouse=True)
async def running_attempts(store: Recording) -> None:
    """The execution ``ex-1`` whose running attempts the tests' task messages name: a
    worker claims only a task whose attempt is its node's running attempt."""
    meta = ExecutionMeta(id="ex-1", workflow_id="wf", version=1, created_at=1.0)
    view = ExecutionView(meta, {})
    for name in NODES:
        view.update_node(name, status=NodeStatus.RUNNING, attempt=1)
    assert await store.create(view, "start", [])


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
async def inbox(bus: MemoryBus, store: Recording) -> AsyncIterator[Inbox]:
    collector = Inbox(bus, store)
    await collector.start()
    yield collector
    await collector.subscription.stop()


@pytest.fixture
def gated() -> tuple[TaskRegistry, asyncio.Event, list[str]]:
    """A registry whose ``work`` task records its start and waits for the gate."""
    registry = TaskRegistry()
    gate = asyncio.Event()
    started: list[str] = []

    @registry.task("work")
    async def work(data: dict[str, Any]) -> dict[str, Any]:
        started.append(data["name"])
        await gate.wait()
        return {"ran": data["name"]}

    return registry, gate, started


async def test_one_claim_call_for_a_batch_of_fresh_finished_and_cancelled_tasks(
    bus: MemoryBus,
    store: Recording,
    inbox: Inbox,
    gated: tuple[TaskRegistry, asyncio.Event, list[str]],
):
    registry, gate, started = gated
    gate.set()
    await store.finish_tasks([done("finished")])
    await store.cancel_tasks(["ex-1:cancelled:1"])
    store.finished.clear()
    worker = Worker(bus, store, pool="function", registry=registry, concurrency=4)
    await worker.start()
    try:
        await bus.broadcast_cancel(["ex-1:overtaken:1"])  # before its claim: never runs
        await bus.publish_tasks(
            [
                task("fresh"),
                task("finished"),
                task("cancelled"),
                task("overtaken"),
                task("fresh"),  # a duplicate delivery in the same batch
            ]
        )
        results = await inbox.wait_for(2)
        await eventually(lambda: worker.running == 0)

        assert store.claimed == [
            ["ex-1:fresh:1", "ex-1:finished:1", "ex-1:cancelled:1", "ex-1:overtaken:1"]
        ]
        assert started == ["fresh"]
        by_id = {result.task_id: result for result in results}
        assert by_id["ex-1:finished:1"] == done("finished")  # re-published, not run again
        assert by_id["ex-1:fresh:1"].output == {"ran": "fresh"}
        assert inbox.unstored == []
        # stored already, so not written again
        assert [task_id for batch in store.finished for task_id in batch] == ["ex-1:fresh:1"]

        # the slots of the tasks that did not run were given back: four run at once
        gate.clear()
        await bus.publish_tasks([task(f"next{i}") for i in range(4)])
        await eventually(lambda: worker.running == 4)
        gate.set()
        assert len(await inbox.wait_for(6)) == 6
    finally:
        gate.set()
        await worker.stop(grace=WAIT)


async def test_a_full_pool_starts_the_admitted_tasks_before_waiting_for_a_slot(
    bus: MemoryBus,
    store: Recording,
    inbox: Inbox,
    gated: tuple[TaskRegistry, asyncio.Event, list[str]],
):
    registry, gate, started = gated
    worker = Worker(bus, store, pool="function", registry=registry, concurrency=2)
    await worker.start()
    try:
        await bus.publish_tasks([task(f"t{i}") for i in range(4)])
        # running counts a task once it is created; it reaches its handler a turn later
        await eventually(lambda: worker.running == 2 and len(started) == 2)
        assert started == ["t0", "t1"]
        assert store.claimed == [["ex-1:t0:1", "ex-1:t1:1"]]  # claimed together, then wait

        gate.set()
        results = await inbox.wait_for(4)
        assert sorted(result.task_id for result in results) == [f"ex-1:t{i}:1" for i in range(4)]
        assert [task_id for batch in store.claimed for task_id in batch] == [
            f"ex-1:t{i}:1" for i in range(4)
        ]
        assert inbox.unstored == []
    finally:
        gate.set()
        await worker.stop(grace=WAIT)


async def test_a_stop_while_waiting_for_a_slot_hands_back_the_rest_and_keeps_the_claimed(
    bus: MemoryBus,
    store: Recording,
    inbox: Inbox,
    gated: tuple[TaskRegistry, asyncio.Event, list[str]],
):
    registry, gate, started = gated
    worker = Worker(bus, store, pool="function", registry=registry, concurrency=1)
    await worker.start()
    await bus.publish_tasks([task("t0"), task("t1")])
    await eventually(lambda: worker.running == 1)

    stopping = asyncio.create_task(worker.stop(grace=WAIT))
    await asyncio.sleep(0.1)  # the batch waiting for a slot is handed back
    assert not stopping.done()  # t0, claimed, is still running and tracked
    gate.set()
    await stopping

    assert started == ["t0"]
    assert [result.task_id for result in await inbox.wait_for(1)] == ["ex-1:t0:1"]
    assert inbox.unstored == []
    assert [task_id for batch in store.claimed for task_id in batch] == ["ex-1:t0:1"]
    assert bus.pending()["tasks.function"] >= 1  # t1 waits for another worker
    assert await store.get_claim("ex-1:t1:1") is None


async def test_stop_returns_only_once_finished_results_are_stored_and_published(
    bus: MemoryBus,
    store: Recording,
    gated: tuple[TaskRegistry, asyncio.Event, list[str]],
    monkeypatch: pytest.MonkeyPatch,
):
    """A result already taken by the background flush (storing it is slow here) is
    still stored and published by the time ``stop`` returns (review finding)."""
    registry, gate, _ = gated
    slow_store = store.finish_tasks

    async def finish_slowly(results: Sequence[TaskResult]) -> None:
        await asyncio.sleep(0.2)
        await slow_store(results)

    monkeypatch.setattr(store, "finish_tasks", finish_slowly)
    worker = Worker(bus, store, pool="function", registry=registry, concurrency=2)
    await worker.start()
    await bus.publish_tasks([task("t0")])
    await eventually(lambda: worker.running == 1)
    gate.set()
    await eventually(lambda: worker.running == 0)  # the flush has the result now

    await worker.stop(grace=WAIT)

    claim = await store.get_claim("ex-1:t0:1")
    assert claim is not None
    assert claim.result == done("t0").model_copy(update={"output": {"ran": "t0"}})
    assert bus.pending()["inbox"] == 1


async def test_stop_gives_up_on_a_flush_that_cannot_finish_after_the_grace(
    bus: MemoryBus,
    store: Recording,
    gated: tuple[TaskRegistry, asyncio.Event, list[str]],
    monkeypatch: pytest.MonkeyPatch,
):
    """A state store that never answers does not hang the worker's stop forever."""
    registry, gate, _ = gated
    never = asyncio.Event()

    async def hang(results: Sequence[TaskResult]) -> None:
        await never.wait()

    monkeypatch.setattr(store, "finish_tasks", hang)
    worker = Worker(bus, store, pool="function", registry=registry, concurrency=2)
    await worker.start()
    await bus.publish_tasks([task("t0")])
    await eventually(lambda: worker.running == 1)
    gate.set()
    await eventually(lambda: worker.running == 0)

    async with asyncio.timeout(5):
        await worker.stop(grace=0.2)
    assert bus.pending()["inbox"] == 0  # nothing published that was not stored


class SlowFinish:
    """Holds ``finish_tasks`` until released: the window between a task's end and its
    result being stored, where a duplicate delivery used to run the attempt again."""

    def __init__(self, store: Recording) -> None:
        self.store = store
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self._original = store.finish_tasks

    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        self.entered.set()
        await self.release.wait()
        await self._original(results)


@pytest.mark.parametrize("step", ["queued", "running", "storing", "stored"])
async def test_a_duplicate_delivery_never_runs_an_attempt_twice_on_one_worker(
    bus: MemoryBus, store: Recording, inbox: Inbox, step: str
):
    """A redelivered task message, arriving at each step of the attempt on the worker that
    has it, runs nothing again: the attempt's body runs once, its result is published."""
    registry = TaskRegistry()
    gate = asyncio.Event()
    runs: list[str] = []

    @registry.task("work")
    async def work(data: dict[str, Any]) -> dict[str, Any]:
        runs.append(data["name"])
        await gate.wait()
        return {"ran": data["name"]}

    slow = SlowFinish(store)
    store.finish_tasks = slow.finish_tasks  # type: ignore[method-assign]
    worker = Worker(bus, store, pool="function", registry=registry, concurrency=4)
    await worker.start()
    try:
        if step == "queued":  # two deliveries in one batch, before anything ran
            await bus.publish_tasks([task("dup"), task("dup")])
        else:
            await bus.publish_tasks([task("dup")])
            await eventually(lambda: runs == ["dup"])
        if step == "running":
            await bus.publish_tasks([task("dup")])
        gate.set()
        if step in ("storing", "stored"):
            await asyncio.wait_for(slow.entered.wait(), WAIT)
            if step == "storing":  # finished, result not stored yet
                await bus.publish_tasks([task("dup")])
        slow.release.set()
        await inbox.wait_for(1)
        if step == "stored":  # stored and published: the claim re-publishes it
            await bus.publish_tasks([task("dup")])
            await inbox.wait_for(2)
        await eventually(lambda: worker.running == 0)
        assert runs == ["dup"]
        assert {result.output["ran"] for result in inbox.results} == {"dup"}
        assert inbox.unstored == []
    finally:
        await worker.stop()


@pytest.mark.parametrize(
    "forged",
    [
        TaskMessage(  # an execution that does not exist
            task_id="nope:work:1",
            execution_id="nope",
            workflow_id="wf",
            version=1,
            node_id="work",
            type="function",
            attempt=1,
            function="work",
        ),
        task("work").model_copy(update={"attempt": 2, "task_id": "ex-1:work:2"}),  # not running
        task("work").model_copy(update={"node_id": "ghost", "task_id": "ex-1:ghost:1"}),
    ],
    ids=["no-execution", "other-attempt", "no-node"],
)
async def test_a_task_message_for_no_running_attempt_runs_nothing(
    bus: MemoryBus,
    store: Recording,
    inbox: Inbox,
    gated: tuple[TaskRegistry, asyncio.Event, list[str]],
    forged: TaskMessage,
    caplog: pytest.LogCaptureFixture,
):
    """A worker runs only the task of an attempt the orchestrator dispatched (the node's
    running attempt); a forged or superseded task message is dropped with a warning."""
    registry, gate, started = gated
    gate.set()
    worker = Worker(bus, store, pool="function", registry=registry, concurrency=2)
    await worker.start()
    try:
        await bus.publish_tasks([forged, task("fresh")])
        await inbox.wait_for(1)  # the genuine task ran: the batch was decided
        await eventually(lambda: worker.running == 0)
        assert started == ["fresh"]
        assert [result.task_id for result in inbox.results] == ["ex-1:fresh:1"]
        assert f"task {forged.task_id} names no running attempt" in caplog.text
    finally:
        await worker.stop()
