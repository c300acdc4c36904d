"""Small helpers of the scenario suite: ids, node builders, deploying a workflow,
polling, event and inbox recording, concurrency probes. Everything here uses only the
engine's public API (:class:`InboxLog` wraps its bus's ``publish_inbox``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from spane import Engine, ExecutionResult, ExecutionSnapshot, NodeStatus
from spane.errors import ExecutionNotFoundError
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import InboxMessage, TaskResult
from spane.schemas.state import NodeState

WAIT = 10.0
"""Upper bound of every wait in the suite (seconds); tests normally finish far sooner."""


def unique_id(prefix: str) -> str:
    """A workflow id no other test (or earlier run on a shared backend) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def fn(node_id: str, function: str, *after: str, **fields: Any) -> dict[str, Any]:
    """A ``function`` node."""
    node: dict[str, Any] = {"id": node_id, "type": "function", "function": function, **fields}
    if after:
        node["after"] = list(after)
    return node


def node(node_id: str, node_type: str, *after: str, **fields: Any) -> dict[str, Any]:
    """A node of any type."""
    spec: dict[str, Any] = {"id": node_id, "type": node_type, **fields}
    if after:
        spec["after"] = list(after)
    return spec


@dataclass(frozen=True, slots=True)
class Deployed:
    """A workflow registered (by :func:`deploy`) under an id of its own."""

    engine: Engine
    id: str
    version: int

    async def start(self, data: Any = None, **options: Any) -> str:
        """Start an execution (``Engine.start`` options: ``execution_id``, ...)."""
        return await self.engine.start(self.id, data, **options)

    async def run(
        self, data: Any = None, *, timeout: float = WAIT, **options: Any
    ) -> ExecutionResult:
        """Start an execution and wait (at most ``timeout`` s) for its end."""
        return await self.engine.run(self.id, data, timeout=timeout, **options)


async def deploy(engine: Engine, name: str, *nodes: dict[str, Any], **fields: Any) -> Deployed:
    """Register a workflow of ``nodes`` (plus any other definition ``fields``: ``output``,
    ``timeout``, ``defaults``...) under a fresh id made from ``name``."""
    workflow_id = unique_id(name)
    record = await engine.register({"id": workflow_id, "nodes": list(nodes), **fields})
    return Deployed(engine, workflow_id, record.version)


def status_of(snapshot: ExecutionSnapshot, node_id: str) -> NodeStatus:
    """A node's status; a node never reached may be absent from the snapshot (pending)."""
    state = snapshot.nodes.get(node_id)
    return state.status if state is not None else NodeStatus.PENDING


def statuses(snapshot: ExecutionSnapshot, *node_ids: str) -> dict[str, NodeStatus]:
    return {node_id: status_of(snapshot, node_id) for node_id in node_ids}


async def eventually(
    check: Callable[[], Any], *, timeout: float = WAIT, interval: float = 0.005, what: str = ""
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(interval)


async def wait_node(
    engine: Engine,
    execution_id: str,
    node_id: str,
    *wanted: NodeStatus,
    timeout: float = WAIT,
) -> NodeState:
    """Wait until ``node_id`` of the execution is in one of the ``wanted`` statuses."""

    async def reached() -> NodeState | None:
        try:
            snapshot = await engine.status(execution_id)
        except ExecutionNotFoundError:
            return None  # a child execution not created yet (it starts asynchronously)
        state = snapshot.nodes.get(node_id)
        if state is not None and state.status in wanted:
            return state
        return None

    names = "/".join(str(s) for s in wanted)
    result: NodeState = await eventually(
        reached, timeout=timeout, what=f"node {node_id!r} to be {names}"
    )
    return result


async def wait_status(
    engine: Engine, execution_id: str, *wanted: str, timeout: float = WAIT
) -> None:
    """Wait until the execution itself is in one of the ``wanted`` statuses."""

    async def reached() -> bool:
        try:
            return (await engine.status(execution_id)).meta.status in wanted
        except ExecutionNotFoundError:
            return False

    await eventually(reached, timeout=timeout, what=f"execution to be {'/'.join(wanted)}")


class EventLog:
    """Records lifecycle events received through :meth:`Engine.subscribe`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, LifecycleEvent]] = []

    @classmethod
    async def attach(cls, engine: Engine, pattern: str = "#") -> EventLog:
        log = cls()
        await engine.subscribe(pattern, log._record)
        return log

    async def _record(self, routing_key: str, event: LifecycleEvent) -> None:
        self.events.append((routing_key, event))

    def of(self, execution_id: str) -> list[tuple[str, LifecycleEvent]]:
        return [(key, event) for key, event in self.events if event.subject == execution_id]

    def keys(self, execution_id: str) -> list[str]:
        return [key for key, _ in self.of(execution_id)]

    def find(self, execution_id: str, routing_key: str) -> list[LifecycleEvent]:
        return [event for key, event in self.of(execution_id) if key == routing_key]

    async def wait_for(
        self, execution_id: str, routing_key: str, *, count: int = 1, timeout: float = WAIT
    ) -> list[LifecycleEvent]:
        """Events may trail the state on a distributed backend: wait for them."""
        found: list[LifecycleEvent] = await eventually(
            lambda: found if len(found := self.find(execution_id, routing_key)) >= count else None,
            timeout=timeout,
            what=f"{count} event(s) {routing_key}",
        )
        return found

    def with_key(self, routing_key: str) -> list[tuple[str, LifecycleEvent]]:
        """Events of any execution published with ``routing_key``."""
        return [(key, event) for key, event in self.events if key == routing_key]

    async def wait_for_key(
        self, routing_key: str, *, count: int = 1, timeout: float = WAIT
    ) -> list[tuple[str, LifecycleEvent]]:
        found: list[tuple[str, LifecycleEvent]] = await eventually(
            lambda: found if len(found := self.with_key(routing_key)) >= count else None,
            timeout=timeout,
            what=f"{count} event(s) {routing_key}",
        )
        return found


class InboxLog:
    """Records the messages an engine publishes to the orchestrator inbox (task results,
    heartbeats), once published: a test can wait until, say, a late result is on its way.
    One execution's inbox messages are processed in the order they were published."""

    def __init__(self) -> None:
        self.messages: list[InboxMessage] = []

    @classmethod
    def attach(cls, engine: Engine) -> InboxLog:
        log = cls()
        publish = engine.bus.publish_inbox
        publish_results = engine.bus.publish_results
        recording = False  # the memory bus's publish_results goes through publish_inbox

        async def publish_and_record(messages: Sequence[InboxMessage]) -> None:
            await publish(messages)
            if not recording:
                log.messages.extend(messages)

        async def publish_results_and_record(messages: Sequence[InboxMessage]) -> None:
            nonlocal recording
            recording = True
            try:
                await publish_results(messages)  # type: ignore[arg-type]
            finally:
                recording = False
            log.messages.extend(messages)

        # replacing the bound methods of this engine's bus instance, for this test only
        engine.bus.publish_inbox = publish_and_record  # type: ignore[method-assign]
        engine.bus.publish_results = publish_results_and_record  # type: ignore[method-assign]
        return log

    def results(self, execution_id: str, node_id: str, attempt: int) -> list[TaskResult]:
        """Published results of one attempt of a node."""
        return [
            m
            for m in self.messages
            if isinstance(m, TaskResult)
            and (m.execution_id, m.node_id, m.attempt) == (execution_id, node_id, attempt)
        ]


class Probe:
    """Counts how many tasks are inside :meth:`running` at once (async or threads)."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.calls = 0
        self.spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def _enter(self) -> float:
        with self._lock:
            self.calls += 1
            self.current += 1
            self.peak = max(self.peak, self.current)
        return time.monotonic()

    def _exit(self, started: float) -> None:
        with self._lock:
            self.current -= 1
            self.spans.append((started, time.monotonic()))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        started = self._enter()
        try:
            yield
        finally:
            self._exit(started)

    @contextlib.contextmanager
    def running_sync(self) -> Iterator[None]:
        started = self._enter()
        try:
            yield
        finally:
            self._exit(started)


async def within(awaitable: Awaitable[Any], timeout: float = WAIT) -> Any:
    """Await with a bound, so a hanging scenario fails instead of stalling the suite."""
    return await asyncio.wait_for(awaitable, timeout)
