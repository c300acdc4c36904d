"""EventRoutes: which node-event routing keys the broker said no queue is bound to."""

from __future__ import annotations

import pytest

from spane.bus import event_routes
from spane.bus.event_routes import EventRoutes
from spane.schemas.events import execution_event, is_node_event, node_event


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_returned_key_is_unbound_until_the_recheck_then_probed_again() -> None:
    clock = Clock()
    routes = EventRoutes(recheck=2.0, clock=clock)
    assert not routes.unbound("node.w.a.started")
    routes.returned("node.w.a.started")
    assert routes.unbound("node.w.a.started")
    assert not routes.unbound("node.w.a.succeeded")  # only the key the broker returned
    clock.now += 1.999
    assert routes.unbound("node.w.a.started")
    clock.now += 0.001
    assert not routes.unbound("node.w.a.started")  # probe the broker again
    assert not routes.unbound("node.w.a.started")  # until it returns one again


def test_forget_makes_every_key_published_again() -> None:
    clock = Clock()
    routes = EventRoutes(clock=clock)
    routes.returned("node.w.a.started")
    routes.returned("node.w.b.started")
    routes.forget()
    assert not routes.unbound("node.w.a.started")
    assert not routes.unbound("node.w.b.started")


def test_the_remembered_keys_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_routes, "MAX_KEYS", 3)
    clock = Clock()
    routes = EventRoutes(recheck=10.0, clock=clock)
    routes.returned("k1")
    clock.now += 5
    routes.returned("k2")
    routes.returned("k3")
    clock.now += 6  # k1 expired, k2 and k3 not
    routes.returned("k4")  # full: the expired k1 goes
    assert [routes.unbound(k) for k in ("k2", "k3", "k4")] == [True, True, True]
    routes.returned("k5")  # full of live keys: all forgotten, then k5 kept
    assert [routes.unbound(k) for k in ("k2", "k3", "k4", "k5")] == [False] * 3 + [True]


def test_only_node_events_are_node_events() -> None:
    _, node = node_event(
        execution_id="e1",
        workflow_id="w",
        version=1,
        node_id="a",
        attempt=1,
        status="started",
        now=0,
    )
    _, execution, _, child, _, iteration = (
        *execution_event(execution_id="e1", workflow_id="w", version=1, status="started", now=0),
        *execution_event(
            execution_id="e1", workflow_id="w", version=1, status="started", now=0, child=True
        ),
        *execution_event(
            execution_id="e1", workflow_id="w", version=1, status="started", now=0, loop_node="l"
        ),
    )
    assert is_node_event(node)
    assert not any(is_node_event(e) for e in (execution, child, iteration))
