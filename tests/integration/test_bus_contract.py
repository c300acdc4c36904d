"""The Bus contract, written once and run on every backend.

``memory`` is the reference (:class:`MemoryBus`); ``rabbit`` runs the same tests against
RabbitMQ (``amqp_url`` fixture). Each rabbit test gets its own namespace
(``spanetest-<uuid8>``), so its exchanges and queues are its own; teardown deletes every
exchange and queue that namespace can have created (by name, over AMQP, which works
against any broker — a vhost per test would need ``rabbitmqctl`` on the broker's host).
The tests after the contract are RabbitMQ-only: dead-lettering, message properties,
pipelined publishing, subscription shutdown and connection loss.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aiormq import spec

from bench.deploy import delete_rabbit_namespace
from spane.bus import rabbit_batch
from spane.bus.base import Bus, Delivery, Reply
from spane.bus.memory import MemoryBus
from spane.bus.rabbit import DEAD_LETTER_QUEUE_HEADER, DEAD_LETTER_REASON_HEADER, RabbitBus
from spane.bus.rabbit_publish import Outgoing
from spane.bus.topology import Topology
from spane.schemas.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    LifecycleEvent,
    execution_event,
    node_event,
)
from spane.schemas.messages import (
    CancelCommand,
    ChildFinished,
    InboxMessage,
    PauseCommand,
    ResumeCommand,
    SignalCommand,
    StartExecution,
    TaskFailure,
    TaskHeartbeat,
    TaskMessage,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import ErrorInfo, ExecutionStatus, ParentLink, Timer, TimerKind
from tests.proxy import TcpProxy

TASK_TYPES = ("function", "http", "image-resize", "bulk")
"""Every task type these tests use (teardown deletes their queues)."""
WAIT = 10.0
NOW = 1_700_000_000.0

BusFactory = Callable[[], Awaitable[Bus]]


# ----------------------------------------------------------------------------- helpers


def task(n: int, task_type: str = "function", execution: str = "e1") -> TaskMessage:
    return TaskMessage(
        task_id=f"{execution}:n{n}:1",
        execution_id=execution,
        workflow_id="wf",
        version=1,
        node_id=f"n{n}",
        type=task_type,
        attempt=1,
        input={"n": n},
        function="tests.noop" if task_type == "function" else None,
    )


def every_inbox_kind() -> list[InboxMessage]:
    return [
        TaskResult(task_id="e1:a:1", execution_id="e1", node_id="a", attempt=1, ok=True, output=1),
        TaskResult(
            task_id="e1:b:1",
            execution_id="e1",
            node_id="b",
            attempt=1,
            ok=False,
            error=TaskFailure(type="ValueError", message="bad"),
        ),
        TaskHeartbeat(task_id="e1:a:1", execution_id="e1", node_id="a", attempt=1, details=50),
        TimerFired(timer=Timer(id="t", execution_id="e1", kind=TimerKind.DELAY, fire_at=NOW)),
        ChildFinished(
            execution_id="e1",
            node_id="sub",
            child_execution_id="e1.sub",
            status=ExecutionStatus.FAILED,
            error=ErrorInfo(type="Boom", message="child failed"),
        ),
        StartExecution(
            execution_id="e2",
            workflow_id="wf",
            input={"x": [1, 2]},
            priority=3,
            parent=ParentLink(execution_id="e1", node_id="sub"),
            depth=1,
        ),
        SignalCommand(execution_id="e1", name="approval", data={"by": "ann"}),
        PauseCommand(execution_id="e1"),
        ResumeCommand(execution_id="e1"),
        CancelCommand(execution_id="e1", reason="test"),
    ]


async def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Recorder:
    """A batch handler that records what it receives (and may fail on demand)."""

    def __init__(self, fail_first: int = 0, fail_always: Callable[[Any], bool] | None = None):
        self.batches: list[list[Delivery[Any]]] = []
        self.fail_first = fail_first
        self.fail_always = fail_always

    async def __call__(self, batch: Sequence[Delivery[Any]]) -> None:
        # copies: the memory bus reuses its Delivery objects when it redelivers
        self.batches.append([dataclasses.replace(d) for d in batch])
        if len(self.batches) <= self.fail_first:
            raise RuntimeError("handler failed on purpose")
        if self.fail_always is not None and any(self.fail_always(d.message) for d in batch):
            raise RuntimeError("poison")

    @property
    def deliveries(self) -> list[Delivery[Any]]:
        return [d for batch in self.batches for d in batch]

    @property
    def messages(self) -> list[Any]:
        return [d.message for d in self.deliveries]


async def delete_namespace(url: str, namespace: str) -> None:
    await delete_rabbit_namespace(url, namespace, TASK_TYPES)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.real)])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Buses of one installation: each call is another process's bus (memory: shared)."""
    buses: list[Bus] = []
    if request.param == "memory":
        shared = MemoryBus()

        async def make() -> Bus:
            return shared

        yield make
        return
    url: str = request.getfixturevalue("amqp_url")
    namespace = f"spanetest-{uuid.uuid4().hex[:8]}"

    async def make_rabbit() -> Bus:
        bus = RabbitBus(
            url,
            namespace=namespace,
            connection_name=f"{request.node.name}#{len(buses)}",
            retry_delay=0.01,
            max_retry_delay=0.05,
        )
        await bus.connect()
        buses.append(bus)
        return bus

    try:
        yield make_rabbit
    finally:
        for bus in buses:
            await bus.close()
        await delete_namespace(url, namespace)


@pytest.fixture
async def bus(make_bus: BusFactory) -> Bus:
    return await make_bus()


@pytest.fixture
def amqp_namespace() -> str:
    return f"spanetest-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def rabbit(
    amqp_url: str, amqp_namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(
        amqp_url,
        namespace=amqp_namespace,
        connection_name=request.node.name,
        delivery_limit=3,
        retry_delay=0.01,
        max_retry_delay=0.05,
        stop_grace=1.0,
    )
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()
        await delete_namespace(amqp_url, amqp_namespace)


@pytest.fixture
async def raw_channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A plain aio-pika channel, to look at the broker side of things."""
    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": "raw"})
    async with connection:
        yield await connection.channel()


# ---------------------------------------------------------------------------- contract


async def test_tasks_reach_the_pool_of_their_type_in_batches(bus: Bus) -> None:
    functions = [task(n) for n in range(10)]
    https = [task(n, "http", execution="e2") for n in range(5)]
    await bus.publish_tasks(functions + https)
    function_pool, http_pool = Recorder(), Recorder()
    sub_f = await bus.consume_tasks("function", function_pool, prefetch=4)
    sub_h = await bus.consume_tasks("http", http_pool, prefetch=8)
    await eventually(lambda: len(function_pool.messages) == 10, "function tasks")
    await eventually(lambda: len(http_pool.messages) == 5, "http tasks")
    await sub_f.stop()
    await sub_h.stop()
    assert sorted(m.task_id for m in function_pool.messages) == sorted(t.task_id for t in functions)
    assert sorted(m.task_id for m in http_pool.messages) == sorted(t.task_id for t in https)
    assert all(1 <= len(batch) <= 4 for batch in function_pool.batches)
    assert all(1 <= len(batch) <= 8 for batch in http_pool.batches)
    delivery = function_pool.deliveries[0]
    assert delivery.message_id == delivery.message.task_id
    assert delivery.redelivered is False
    assert delivery.reply is None


async def test_tasks_wait_for_a_pool_that_starts_later(make_bus: BusFactory) -> None:
    orchestrator = await make_bus()
    await orchestrator.publish_tasks([task(n, "image-resize") for n in range(3)])
    await asyncio.sleep(0.1)
    worker = await make_bus()
    pool = Recorder()
    sub = await worker.consume_tasks("image-resize", pool, prefetch=10)
    await eventually(lambda: len(pool.messages) == 3, "tasks published before the pool")
    await sub.stop()
    assert {m.node_id for m in pool.messages} == {"n0", "n1", "n2"}


async def test_inbox_round_trip_of_every_message_kind(bus: Bus) -> None:
    sent = every_inbox_kind()
    inbox = Recorder()
    sub = await bus.consume_inbox(inbox, prefetch=64)
    await bus.publish_inbox(sent)
    await eventually(lambda: len(inbox.messages) == len(sent), "every inbox message")
    await sub.stop()

    def key(message: InboxMessage) -> str:
        return message.model_dump_json()

    assert sorted(inbox.messages, key=key) == sorted(sent, key=key)
    assert all(type(m) in {type(s) for s in sent} for m in inbox.messages)
    ids = [d.message_id for d in inbox.deliveries]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    assert all(d.reply is None for d in inbox.deliveries)


async def test_a_failed_batch_is_redelivered(bus: Bus) -> None:
    results = [m for m in every_inbox_kind() if isinstance(m, TaskResult)]
    inbox = Recorder(fail_first=1)
    await bus.publish_inbox(results)
    sub = await bus.consume_inbox(inbox, prefetch=16)

    def handled() -> list[TaskResult]:
        return [d.message for batch in inbox.batches[1:] for d in batch]

    await eventually(lambda: len(handled()) >= len(results), "the redelivery")
    await sub.stop()
    failed = inbox.batches[0]
    assert all(not d.redelivered for d in failed)
    assert sorted(m.task_id for m in handled()) == sorted(m.task_id for m in results)
    again = {d.message_id for batch in inbox.batches[1:] for d in batch if d.redelivered}
    assert {d.message_id for d in failed} <= again


async def test_request_gets_the_reply(bus: Bus) -> None:
    async def answer(batch: Sequence[Delivery[InboxMessage]]) -> None:
        for delivery in batch:
            if delivery.reply is not None:
                message = delivery.message
                assert isinstance(message, SignalCommand)
                await delivery.reply({"ok": True, "execution_id": message.execution_id})

    sub = await bus.consume_inbox(answer, prefetch=8)
    reply = await bus.request(SignalCommand(execution_id="e7", name="go"), timeout=WAIT)
    assert reply == {"ok": True, "execution_id": "e7"}
    replies = await asyncio.gather(
        *(
            bus.request(SignalCommand(execution_id=f"x{i}", name="go"), timeout=WAIT)
            for i in range(5)
        )
    )
    assert [r["execution_id"] for r in replies] == [f"x{i}" for i in range(5)]
    await sub.stop()


async def test_request_without_an_answer_times_out(bus: Bus) -> None:
    with pytest.raises(TimeoutError):
        await bus.request(PauseCommand(execution_id="e1"), timeout=0.3)


async def test_event_subscriptions_follow_topic_patterns(bus: Bus) -> None:
    failed: list[tuple[str, LifecycleEvent]] = []
    nodes: list[tuple[str, LifecycleEvent]] = []

    async def on_failed(key: str, event: LifecycleEvent) -> None:
        failed.append((key, event))

    async def on_node(key: str, event: LifecycleEvent) -> None:
        nodes.append((key, event))

    sub_failed = await bus.subscribe_events("execution.*.failed", on_failed)
    sub_nodes = await bus.subscribe_events("node.#", on_node)
    common: dict[str, Any] = {"execution_id": "e1", "workflow_id": "orders", "version": 1}
    succeeded = execution_event(status="succeeded", now=NOW, **common)
    node = node_event(node_id="charge", attempt=1, status="failed", now=NOW, **common)
    fail = execution_event(status="failed", now=NOW, **common)
    await bus.publish_events([succeeded, node, fail])
    await eventually(lambda: len(failed) == 1 and len(nodes) == 1, "matching events")
    await asyncio.sleep(0.1)
    await sub_failed.stop()
    await sub_nodes.stop()
    assert failed == [fail]
    assert nodes == [node]
    assert failed[0][0] == "execution.orders.failed"


async def test_broadcast_cancellation_reaches_every_subscriber(make_bus: BusFactory) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def handler(name: str) -> Callable[[str], Awaitable[None]]:
        async def on_cancel(task_id: str) -> None:
            seen[name].append(task_id)

        return on_cancel

    worker_a, worker_b, orchestrator = await make_bus(), await make_bus(), await make_bus()
    sub_a = await worker_a.subscribe_cancellations(handler("a"))
    sub_b = await worker_b.subscribe_cancellations(handler("b"))
    await orchestrator.broadcast_cancel(["e1:a:1", "e1:b:2"])
    await orchestrator.broadcast_cancel([])
    await eventually(lambda: all(len(ids) == 2 for ids in seen.values()), "both subscribers")
    await sub_a.stop()
    await sub_b.stop()
    assert seen == {"a": ["e1:a:1", "e1:b:2"], "b": ["e1:a:1", "e1:b:2"]}


async def test_a_stopped_subscription_receives_nothing_more(bus: Bus) -> None:
    pool = Recorder()
    sub = await bus.consume_tasks("bulk", pool, prefetch=4)
    await bus.publish_tasks([task(1, "bulk")])
    await eventually(lambda: len(pool.messages) == 1, "the first task")
    await sub.stop()
    await bus.publish_tasks([task(2, "bulk")])
    await asyncio.sleep(0.2)
    assert [m.node_id for m in pool.messages] == ["n1"]
    later = Recorder()
    sub = await bus.consume_tasks("bulk", later, prefetch=4)
    await eventually(lambda: len(later.messages) == 1, "the task left in the queue")
    await sub.stop()


# ---------------------------------------------------------------------- RabbitMQ only


async def _dead_letters(
    channel: aio_pika.abc.AbstractChannel, namespace: str, count: int
) -> list[AbstractIncomingMessage]:
    queue = await channel.get_queue(Topology(namespace).dead_letter_queue, ensure=False)
    found: list[AbstractIncomingMessage] = []
    deadline = time.monotonic() + WAIT
    while len(found) < count and time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            found.append(message)
    return found


@pytest.mark.real
async def test_undecodable_inbox_messages_go_to_the_dead_letter_queue(
    rabbit: RabbitBus, raw_channel: aio_pika.abc.AbstractChannel, amqp_namespace: str
) -> None:
    inbox = Recorder()
    sub = await rabbit.consume_inbox(inbox, prefetch=8)
    exchange = await raw_channel.get_exchange(rabbit.topology.orchestrator_exchange)
    await exchange.publish(aio_pika.Message(b"\x00 not json", message_id="junk-1"), "")
    await exchange.publish(aio_pika.Message(b'{"kind": "surprise"}', message_id="junk-2"), "")
    await rabbit.publish_inbox([PauseCommand(execution_id="e1")])
    await eventually(lambda: len(inbox.messages) == 1, "the good message")
    dead = await _dead_letters(raw_channel, amqp_namespace, 2)
    await asyncio.sleep(0.2)
    await sub.stop()
    assert inbox.messages == [PauseCommand(execution_id="e1")]
    assert len(inbox.batches) == 1  # the junk never reached the handler, nor came back
    by_id = {m.message_id: m for m in dead}
    assert set(by_id) == {"junk-1", "junk-2"}
    assert by_id["junk-1"].body == b"\x00 not json"
    reason = str(by_id["junk-1"].headers[DEAD_LETTER_REASON_HEADER])
    assert "invalid orchestrator message: Invalid JSON" in reason
    assert "message needs 'kind'" in str(by_id["junk-2"].headers[DEAD_LETTER_REASON_HEADER])
    assert by_id["junk-2"].headers[DEAD_LETTER_QUEUE_HEADER] == rabbit.topology.orchestrator_queue


@pytest.mark.real
async def test_a_message_that_always_fails_is_dead_lettered_at_the_delivery_limit(
    rabbit: RabbitBus, raw_channel: aio_pika.abc.AbstractChannel, amqp_namespace: str
) -> None:
    poison = task(1, "bulk")
    fine = task(2, "bulk")
    pool = Recorder(fail_always=lambda m: m.node_id == "n1")
    await rabbit.publish_tasks([poison, fine])
    sub = await rabbit.consume_tasks("bulk", pool, prefetch=8)
    dead = await _dead_letters(raw_channel, amqp_namespace, 1)
    await sub.stop()
    assert [m.message_id for m in dead] == [poison.task_id]
    assert dead[0].headers["x-first-death-reason"] == "delivery_limit"
    attempts = [d for d in pool.deliveries if d.message.node_id == "n1"]
    assert 2 <= len(attempts) <= rabbit.delivery_limit + 1
    # the innocent task does not share the poison's fate: redelivered, it goes alone
    assert any(len(batch) == 1 and batch[0].message == fine for batch in pool.batches)
    assert not any(m.message_id == fine.task_id for m in dead)


@pytest.mark.real
async def test_messages_are_persistent_and_described(
    rabbit: RabbitBus, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    events_queue = await raw_channel.declare_queue(exclusive=True)
    await events_queue.bind(rabbit.topology.events_exchange, "#")
    sent_task = task(3, "http").model_copy(update={"priority": 7})
    await rabbit.publish_tasks([sent_task])
    routing_key, event = execution_event(
        execution_id="e1", workflow_id="orders", version=1, status="started", now=NOW
    )
    await rabbit.publish_events([(routing_key, event)])
    await rabbit.publish_inbox([SignalCommand(execution_id="e9", name="go")])

    task_queue = await raw_channel.get_queue(rabbit.topology.task_queue("http"), ensure=False)
    inbox_queue = await raw_channel.get_queue(rabbit.topology.orchestrator_queue, ensure=False)
    on_task = await _get(task_queue)
    on_event = await _get(events_queue)
    on_inbox = await _get(inbox_queue)

    for message in (on_task, on_event, on_inbox):
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.headers["spane-schema"] == 1
        assert message.message_id
    assert on_task.content_type == "application/json"
    assert (on_task.message_id, on_task.correlation_id) == (sent_task.task_id, "e1")
    assert (on_task.type, on_task.priority, on_task.routing_key) == ("task", 7, "http")
    assert on_event.content_type == CLOUDEVENTS_CONTENT_TYPE
    assert on_event.routing_key == "execution.orders.started"
    assert (on_event.message_id, on_event.type) == (event.id, "io.spane.execution.started")
    assert on_event.correlation_id == "e1"
    assert (on_inbox.type, on_inbox.correlation_id) == ("signal", "e9")


@pytest.mark.real
async def test_node_events_no_queue_is_bound_to_are_held_back_until_probed_again(
    rabbit: RabbitBus, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    """The broker returns a node event nobody is bound to; its routing key is then not
    published for a while (no error either way), execution events always are, and a
    queue bound by hand gets the key's events from the next probe on."""
    common: dict[str, Any] = {"execution_id": "e1", "workflow_id": "orders", "version": 1}

    def started(attempt: int) -> tuple[str, LifecycleEvent]:
        return node_event(node_id="charge", attempt=attempt, status="started", now=NOW, **common)

    key = started(1)[0]
    executions = await raw_channel.declare_queue(exclusive=True)
    await executions.bind(rabbit.topology.events_exchange, "execution.#")
    finished = execution_event(status="succeeded", now=NOW, **common)
    await rabbit.publish_events([started(1), finished])  # no error for the returned one
    assert rabbit._routes.unbound(key)
    assert (await _get(executions)).routing_key == "execution.orders.succeeded"

    by_hand = await raw_channel.declare_queue(exclusive=True)
    await by_hand.bind(rabbit.topology.events_exchange, key)
    await rabbit.publish_events([started(2)])  # held back: the broker is not asked again yet
    await asyncio.sleep(0.2)
    assert await by_hand.get(no_ack=True, fail=False) is None

    later = time.monotonic() + rabbit._routes.recheck
    rabbit._routes.clock = lambda: later  # the pause is over: the next event probes again
    await rabbit.publish_events([started(3)])
    arrived = await _get(by_hand)
    assert (arrived.routing_key, arrived.message_id) == (key, started(3)[1].id)
    assert not rabbit._routes.unbound(key)


@pytest.mark.real
async def test_a_subscription_through_the_bus_receives_held_back_node_events_at_once(
    rabbit: RabbitBus,
) -> None:
    common: dict[str, Any] = {"execution_id": "e1", "workflow_id": "orders", "version": 1}
    first = node_event(node_id="charge", attempt=1, status="started", now=NOW, **common)
    await rabbit.publish_events([first])
    assert rabbit._routes.unbound(first[0])
    seen: list[tuple[str, LifecycleEvent]] = []

    async def on_event(key: str, event: LifecycleEvent) -> None:
        seen.append((key, event))

    sub = await rabbit.subscribe_events("node.orders.#", on_event)
    second = node_event(node_id="charge", attempt=2, status="started", now=NOW, **common)
    await rabbit.publish_events([second])
    await eventually(lambda: len(seen) == 1, "the node event")
    await sub.stop()
    assert seen == [second]


@pytest.mark.real
async def test_deleting_a_namespace_leaves_none_of_its_exchanges(amqp_url: str) -> None:
    """Tests and the bench delete their namespace: every exchange the topology names
    must go (a forgotten one piles up on a shared broker, run after run)."""
    namespace = f"spanetest-{uuid.uuid4().hex[:8]}"
    bus = RabbitBus(amqp_url, namespace=namespace)
    await bus.connect()
    await bus.close()
    topology = Topology(namespace)
    names = [getattr(topology, n) for n in dir(Topology) if n.endswith("_exchange") or n == "dlx"]
    assert topology.results_exchange in names
    await delete_namespace(amqp_url, namespace)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in names:
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.get_exchange(name, ensure=True)


async def _get(queue: aio_pika.abc.AbstractQueue) -> AbstractIncomingMessage:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.02)
    pytest.fail(f"nothing arrived on {queue.name}")


@pytest.mark.real
async def test_unroutable_tasks_raise(rabbit: RabbitBus, raw_channel: Any) -> None:
    await rabbit.publish_tasks([task(1, "bulk")])
    await raw_channel.queue_delete(rabbit.topology.task_queue("bulk"))
    with pytest.raises(aio_pika.exceptions.PublishError):
        await rabbit.publish_tasks([task(2, "bulk")])


@pytest.mark.real
async def test_a_batch_is_written_at_once_and_each_message_keeps_its_own_outcome(
    amqp_url: str,
) -> None:
    """One frame batch on aiormq's channel (the installed aiormq must have the state it
    uses: else every publication silently takes the slower path): a returned message
    fails alone, the others are confirmed and arrive, in order."""
    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": "batch"})
    async with connection:
        # as RabbitBus opens its publishing channels
        opened = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await _publish_a_batch(opened, await opened.get_underlay_channel())


async def _publish_a_batch(opened: aio_pika.abc.AbstractChannel, channel: Any) -> None:
    assert rabbit_batch.supports(channel)
    queue = await opened.declare_queue(exclusive=True)

    def outgoing(n: int, routing_key: str) -> Outgoing:
        properties = spec.Basic.Properties(message_id=f"m{n}", delivery_mode=2)
        return Outgoing("", routing_key, b'{"n": %d}' % n, properties, mandatory=True)

    batch = [outgoing(1, queue.name), outgoing(2, "no-such-queue"), outgoing(3, queue.name)]
    tag_before = channel.delivery_tag
    results = await rabbit_batch.publish_batch(channel, batch)
    assert isinstance(results[1], aio_pika.exceptions.PublishError)
    assert [isinstance(r, BaseException) for r in (results[0], results[2])] == [False, False]
    assert channel.delivery_tag == tag_before + 3
    assert not channel.message_id_delivery_tag  # forgotten once confirmed or returned
    first, second = await _get(queue), await _get(queue)
    assert (first.message_id, second.message_id) == ("m1", "m3")


@pytest.mark.real
@pytest.mark.slow
async def test_a_thousand_tasks_publish_pipelined_and_consume_in_batches(
    rabbit: RabbitBus,
) -> None:
    tasks = [task(n, "bulk") for n in range(1000)]
    started = time.monotonic()
    await rabbit.publish_tasks(tasks)
    elapsed = time.monotonic() - started
    pool = Recorder()
    sub = await rabbit.consume_tasks("bulk", pool, prefetch=100)
    await eventually(lambda: len(pool.messages) == 1000, "1,000 tasks", timeout=30)
    await sub.stop()
    assert len({m.task_id for m in pool.messages}) == 1000
    sizes = [len(batch) for batch in pool.batches]
    assert max(sizes) > 1
    assert max(sizes) <= 100
    assert elapsed < 15, f"publishing 1,000 confirmed tasks took {elapsed:.1f}s"


@pytest.mark.real
async def test_stop_waits_for_the_running_handler(rabbit: RabbitBus) -> None:
    finished = asyncio.Event()
    started = asyncio.Event()

    async def slow(batch: Sequence[Delivery[TaskMessage]]) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    sub = await rabbit.consume_tasks("bulk", slow, prefetch=1)
    await rabbit.publish_tasks([task(1, "bulk")])
    await asyncio.wait_for(started.wait(), WAIT)
    await sub.stop()
    assert finished.is_set()


@pytest.mark.real
async def test_stop_cancels_a_handler_that_outlives_the_grace(rabbit: RabbitBus) -> None:
    started = asyncio.Event()

    async def stuck(batch: Sequence[Delivery[TaskMessage]]) -> None:
        started.set()
        await asyncio.Event().wait()

    sub = await rabbit.consume_tasks("bulk", stuck, prefetch=1)
    await rabbit.publish_tasks([task(1, "bulk")])
    await asyncio.wait_for(started.wait(), WAIT)
    begun = time.monotonic()
    await sub.stop()
    assert 0.9 <= time.monotonic() - begun < 5
    later = Recorder()
    sub = await rabbit.consume_tasks("bulk", later, prefetch=1)
    await eventually(lambda: len(later.messages) == 1, "the unacknowledged task, again")
    await sub.stop()
    assert later.deliveries[0].redelivered


@pytest.mark.real
async def test_an_answer_to_a_vanished_caller_does_not_fail_the_batch(
    rabbit: RabbitBus, raw_channel: aio_pika.abc.AbstractChannel
) -> None:
    replies: list[Reply] = []
    inbox = Recorder()

    async def answer(batch: Sequence[Delivery[InboxMessage]]) -> None:
        await inbox(batch)
        for delivery in batch:
            if delivery.reply is not None:
                await delivery.reply({"ok": True})
                replies.append({"ok": True})

    sub = await rabbit.consume_inbox(answer, prefetch=4)
    exchange = await raw_channel.get_exchange(rabbit.topology.orchestrator_exchange)
    body = b'{"command": "pause", "execution_id": "e1"}'
    await exchange.publish(aio_pika.Message(body, reply_to="amq.gen-nobody-home"), "")
    await eventually(lambda: len(replies) == 1, "the reply attempt")
    await asyncio.sleep(0.2)
    await sub.stop()
    assert len(inbox.batches) == 1
    assert not inbox.deliveries[0].redelivered
    assert inbox.deliveries[0].message_id


# ---------------------------------------------------------------------- connection loss


@pytest.mark.real
@pytest.mark.slow
async def test_consumers_and_publishers_survive_a_connection_loss(
    amqp_url: str, amqp_namespace: str
) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    port = await proxy.start()
    proxied = f"amqp://{parts.username}:{parts.password}@127.0.0.1:{port}{parts.path or '/'}"
    bus = RabbitBus(
        proxied + "?reconnect_interval=0.2",
        namespace=amqp_namespace,
        connection_name="proxy-test",
        retry_delay=0.01,
    )
    try:
        await bus.connect()
        pool = Recorder()
        sub = await bus.consume_tasks("bulk", pool, prefetch=10)
        await bus.publish_tasks([task(1, "bulk")])
        await eventually(lambda: len(pool.messages) == 1, "a task before the outage")

        proxy.refuse = True
        proxy.cut()
        publishing = asyncio.create_task(bus.publish_tasks([task(2, "bulk")]))
        await asyncio.sleep(1.0)
        assert not publishing.done()  # waiting for the broker, not lost
        proxy.refuse = False
        await asyncio.wait_for(publishing, 20)
        await eventually(lambda: "n2" in {m.node_id for m in pool.messages}, "after the outage")
        await bus.publish_tasks([task(3, "bulk")])
        await eventually(lambda: "n3" in {m.node_id for m in pool.messages}, "a later task")
        await sub.stop()
    finally:
        await bus.close()
        await proxy.close()
        await delete_namespace(amqp_url, amqp_namespace)


@pytest.mark.real
@pytest.mark.slow
async def test_a_publication_during_an_outage_gives_up_after_the_publish_timeout(
    amqp_url: str, amqp_namespace: str
) -> None:
    """Review finding: waiting for the connection must count against publish_timeout."""
    from urllib.parse import urlsplit

    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    port = await proxy.start()
    proxied = f"amqp://{parts.username}:{parts.password}@127.0.0.1:{port}{parts.path or '/'}"
    bus = RabbitBus(
        proxied + "?reconnect_interval=0.2",
        namespace=amqp_namespace,
        connection_name="outage-timeout-test",
        publish_timeout=1.5,
    )
    try:
        await bus.connect()
        proxy.refuse = True
        proxy.cut()
        await asyncio.sleep(0.5)  # the robust connection notices and starts reconnecting
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bus.publish_inbox(every_inbox_kind()[:1]), 10)
        waited = asyncio.get_running_loop().time() - started
        assert waited < 5.0, f"gave up after {waited:.1f} s, publish_timeout is 1.5 s"
    finally:
        proxy.refuse = False
        await bus.close()
        await proxy.close()
        await delete_namespace(amqp_url, amqp_namespace)
