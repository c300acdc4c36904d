"""The :class:`Bus` protocol: how the orchestrator, workers and clients exchange messages.

Consumers receive micro-batches: whatever the prefetch window holds, up to ``prefetch``
messages, without waiting to fill it. A handler that returns has processed the whole
batch (the adapter acks it); one that raises leaves every message of the batch to be
redelivered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from spane.bus.dead_letters import DeadLetter
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import InboxMessage, TaskHeartbeat, TaskMessage, TaskResult

T = TypeVar("T")

Reply = dict[str, Any]
"""An RPC answer: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``."""


@dataclass(slots=True)
class Delivery(Generic[T]):
    """One consumed message: the decoded body, its id, and where to answer (RPC)."""

    message: T
    message_id: str
    reply: Callable[[Reply], Awaitable[None]] | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """A message published to the triggers exchange: its routing key and JSON body."""

    routing_key: str
    body: Any


class QueueStats(NamedTuple):
    """One pool's queue now: ``messages`` waiting (ready, not yet delivered to a worker)
    and ``consumers`` (worker runtimes taking from it)."""

    messages: int
    consumers: int


BatchHandler = Callable[[Sequence[Delivery[T]]], Awaitable[None]]
EventHandler = Callable[[str, LifecycleEvent], Awaitable[None]]
CancelHandler = Callable[[str], Awaitable[None]]


class Subscription(Protocol):
    async def stop(self) -> None:
        """Stop consuming; in-flight handler calls finish first."""
        ...


class Bus(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def publish_tasks(self, tasks: Sequence[TaskMessage]) -> None:
        """Publish task attempts to their pools (confirmed together)."""
        ...

    async def publish_inbox(self, messages: Sequence[InboxMessage]) -> None:
        """Publish to the orchestrator inbox (confirmed together)."""
        ...

    async def publish_results(self, messages: Sequence[TaskResult | TaskHeartbeat]) -> None:
        """Workers: publish task results and heartbeats to the inbox, through the one
        route a worker may write to (on RabbitMQ the results exchange, where nothing else
        is accepted)."""
        ...

    async def request(self, message: InboxMessage, timeout: float = 30.0) -> Reply:
        """Publish a command to the orchestrator and wait for its answer."""
        ...

    async def publish_events(self, events: Sequence[tuple[str, LifecycleEvent]]) -> None:
        """Publish lifecycle events on the events topic."""
        ...

    def node_events_wanted(self) -> bool:
        """False only when this bus knows nobody can receive a node-level event now (the
        embedded bus knows its subscribers; a broker's bindings are not known here)."""
        ...

    async def broadcast_cancel(self, task_ids: Sequence[str]) -> None:
        """Tell every worker to cancel these running attempts."""
        ...

    async def publish_trigger(
        self, routing_key: str, body: Any, *, headers: dict[str, Any] | None = None
    ) -> None:
        """Publish a trigger event (any JSON, or a structured CloudEvent)."""
        ...

    async def consume_triggers(
        self, handler: BatchHandler[TriggerEvent], *, prefetch: int
    ) -> Subscription: ...

    async def consume_inbox(
        self, handler: BatchHandler[InboxMessage], *, prefetch: int
    ) -> Subscription: ...

    async def consume_tasks(
        self, pool: str, handler: BatchHandler[TaskMessage], *, prefetch: int
    ) -> Subscription:
        """Consume the queue of ``pool`` (named like a task type unless a node names it)."""
        ...

    async def pool_stats(self, pools: Sequence[str]) -> dict[str, QueueStats]:
        """Each pool's queue depth and consumer count; a queue that does not exist (yet)
        is ``QueueStats(0, 0)``."""
        ...

    async def subscribe_events(self, pattern: str, handler: EventHandler) -> Subscription:
        """``pattern`` is a topic pattern (``execution.*.failed``, ``node.#``)."""
        ...

    async def subscribe_cancellations(self, handler: CancelHandler) -> Subscription: ...

    async def consume_dead_letters(
        self, handler: BatchHandler[DeadLetter], *, prefetch: int
    ) -> Subscription:
        """Messages dead-lettered anywhere (undecodable, refused, over the delivery
        limit), each batch settled once ``handler`` returns (the orchestrator stores them)."""
        ...

    async def redrive(self, entry: DeadLetter) -> None:
        """Re-publish a dead letter's body and properties to where it was first sent."""
        ...
