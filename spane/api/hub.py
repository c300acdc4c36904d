"""Lifecycle events in the API process: a bounded history per execution, and live
fan-out to WebSocket clients.

One engine subscription (``#``: every execution and node event) feeds both. The
history is what ``GET /v1/executions/{id}/events`` answers: the events this process
has seen, deduplicated by CloudEvent ``id`` (delivery is at least once), at most
``per_execution`` per execution, for the ``executions`` most recently active
executions. It is not durable: a restarted API process starts empty.

The same events, in arrival order, are also kept in one bounded log (the last
``recent`` events, with their routing keys) from which a WebSocket client resumes:
``?after=<event id>`` replays what came after that event, then goes on live.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from spane.bus.base import Subscription
from spane.engine import Engine
from spane.schemas.events import LifecycleEvent
from spane.schemas.topics import topic_matches

OVERFLOW = None
"""Put in a client's queue when it fell behind: the stream ends there."""


@dataclass(slots=True)
class _History:
    events: deque[LifecycleEvent]
    ids: set[str] = field(default_factory=set)
    dropped: bool = False

    def add(self, event: LifecycleEvent) -> None:
        if event.id in self.ids:
            return
        if len(self.events) == self.events.maxlen:
            self.ids.discard(self.events.popleft().id)
            self.dropped = True
        self.events.append(event)
        self.ids.add(event.id)


class Listener:
    """One live client: the events matching its pattern, JSON-encoded, bounded."""

    def __init__(self, pattern: str, maxsize: int) -> None:
        self.pattern = pattern
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, routing_key: str, encoded: str) -> None:
        if self.overflowed or not topic_matches(self.pattern, routing_key):
            return
        if self.queue.qsize() >= self.queue.maxsize - 1:
            self.overflowed = True  # the last slot is kept for the end marker
            self.queue.put_nowait(OVERFLOW)
            return
        self.queue.put_nowait(encoded)


class EventHub:
    def __init__(
        self,
        *,
        per_execution: int = 1000,
        executions: int = 10_000,
        queue_size: int = 1000,
        recent: int = 10_000,
    ) -> None:
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=recent)
        """(event id, routing key, encoded event), oldest first: what a client resumes from."""
        self._recent_ids: dict[str, int] = {}
        self._appended = 0
        self.per_execution = per_execution
        self.max_executions = executions
        self.queue_size = queue_size
        self.started_at: float | None = None
        self._histories: OrderedDict[str, _History] = OrderedDict()
        self._listeners: set[Listener] = set()
        self._subscription: Subscription | None = None

    async def start(self, engine: Engine) -> None:
        self.started_at = time.time()
        self._subscription = await engine.subscribe("#", self._on_event)

    async def stop(self, engine: Engine) -> None:
        if self._subscription is not None:
            await engine.unsubscribe(self._subscription)
            self._subscription = None
        for listener in list(self._listeners):
            listener.overflowed = True
            if listener.queue.full():
                listener.queue.get_nowait()
            listener.queue.put_nowait(OVERFLOW)

    async def _on_event(self, routing_key: str, event: LifecycleEvent) -> None:
        self.record(event)
        if event.id in self._recent_ids:
            return  # a re-published event (delivery is at least once)
        encoded = event.model_dump_json()
        self._remember(event.id, routing_key, encoded)
        for listener in list(self._listeners):
            listener.offer(routing_key, encoded)

    def _remember(self, event_id: str, routing_key: str, encoded: str) -> None:
        if len(self.recent) == self.recent.maxlen:
            oldest, _, _ = self.recent[0]
            self._recent_ids.pop(oldest, None)
        self.recent.append((event_id, routing_key, encoded))
        self._recent_ids[event_id] = self._appended
        self._appended += 1

    def listen_after(self, pattern: str, event_id: str) -> Listener | None:
        """A listener that first receives the recent events after ``event_id`` matching
        ``pattern``, then live ones; None when that event is no longer (or never was) in
        the recent log. No event can slip between the replay and the live stream: both
        happen without yielding to the event loop."""
        position = self._recent_ids.get(event_id)
        if position is None:
            return None
        listener = self.listen(pattern)
        skip = len(self.recent) - (self._appended - position - 1)
        for _, routing_key, encoded in list(self.recent)[skip:]:
            listener.offer(routing_key, encoded)
        return listener

    def record(self, event: LifecycleEvent) -> None:
        history = self._histories.get(event.subject)
        if history is None:
            history = _History(deque(maxlen=self.per_execution))
            self._histories[event.subject] = history
            while len(self._histories) > self.max_executions:
                self._histories.popitem(last=False)
        else:
            self._histories.move_to_end(event.subject)
        history.add(event)

    def history(self, execution_id: str) -> tuple[list[LifecycleEvent], bool]:
        """The execution's events seen here, oldest first, and whether some were dropped."""
        history = self._histories.get(execution_id)
        if history is None:
            return [], False
        return list(history.events), history.dropped

    def listen(self, pattern: str) -> Listener:
        listener = Listener(pattern, self.queue_size)
        self._listeners.add(listener)
        return listener

    def forget(self, listener: Listener) -> None:
        self._listeners.discard(listener)
