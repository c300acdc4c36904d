"""Which node-event routing keys reach a queue, as the broker last said.

Node events are two thirds of what an orchestrator publishes, and most deployments bind
no queue to most of them (the API's live hub binds ``#``; a workflow's own consumers
bind a few keys). The RabbitMQ bus publishes node events ``mandatory``: the broker
returns one that no queue is bound to, and that routing key is then *unbound* here for
:data:`RECHECK` seconds, during which its events are not published at all. The next
event on that key after the pause probes the broker again.

What a subscriber sees: a queue bound to a key that was unbound receives that key's
events at most :data:`RECHECK` seconds after binding (events before it could not have
reached it anyway); a subscription made through this same bus is immediate
(:meth:`EventRoutes.forget`). Execution-level events are never held back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

RECHECK = 2.0
"""Seconds a routing key the broker returned stays unpublished before it is probed again."""
MAX_KEYS = 100_000
"""Unbound keys remembered at most (a key is a workflow, a node and a status); past it
the expired ones are dropped, and if none had expired, all of them."""


class EventRoutes:
    """Routing keys the broker returned recently, each with when to probe it again."""

    def __init__(
        self, recheck: float = RECHECK, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.recheck = recheck
        self.clock = clock
        self._unbound: dict[str, float] = {}

    def unbound(self, routing_key: str) -> bool:
        """Whether an event on ``routing_key`` would reach no queue (said by the broker
        less than :attr:`recheck` seconds ago)."""
        until = self._unbound.get(routing_key)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self._unbound[routing_key]
        return False

    def returned(self, routing_key: str) -> None:
        """The broker returned an event on ``routing_key``: no queue is bound to it."""
        if len(self._unbound) >= MAX_KEYS:
            now = self.clock()
            self._unbound = {key: until for key, until in self._unbound.items() if until > now}
            if len(self._unbound) >= MAX_KEYS:
                self._unbound.clear()
        self._unbound[routing_key] = self.clock() + self.recheck

    def forget(self) -> None:
        """A queue was just bound to the events exchange: every key may reach it now."""
        self._unbound.clear()


__all__ = ["RECHECK", "EventRoutes"]
