"""WebSocket ``/v1/events``: live lifecycle CloudEvents matching a routing pattern."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from spane.api.hub import OVERFLOW, EventHub, Listener
from spane.schemas.events import execution_event

from .conftest import CHAIN, finished, register, start, wait_for


def test_events_of_a_started_execution_arrive_live(client: TestClient) -> None:
    register(client, CHAIN)
    with client.websocket_connect("/v1/events?filter=execution.chain.*") as ws:
        execution_id = start(client, "chain", {"n": 1})
        started = ws.receive_json()
        done = ws.receive_json()
    assert started["type"] == "io.spane.execution.started"
    assert started["subject"] == execution_id
    assert started["specversion"] == "1.0"
    assert done["type"] == "io.spane.execution.succeeded"
    assert done["data"]["output"] == {"n": 3}


def test_node_events_by_pattern(client: TestClient) -> None:
    register(client, CHAIN)
    with client.websocket_connect("/v1/events?filter=node.*.second.%23") as ws:
        execution_id = start(client, "chain", {"n": 1})
        events = [ws.receive_json(), ws.receive_json()]
    assert [e["type"] for e in events] == ["io.spane.node.started", "io.spane.node.succeeded"]
    assert {e["data"]["node_id"] for e in events} == {"second"}
    assert wait_for(client, execution_id, finished)["status"] == "succeeded"


def test_default_filter_gets_everything(client: TestClient) -> None:
    register(client, CHAIN)
    with client.websocket_connect("/v1/events") as ws:
        start(client, "chain", {"n": 1})
        first = ws.receive_json()
    assert first["type"] == "io.spane.execution.started"


def test_an_invalid_filter_closes_with_1008(client: TestClient) -> None:
    with (
        client.websocket_connect("/v1/events?filter=bad..pattern") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == 1008


def test_a_listener_that_falls_behind_gets_the_end_marker() -> None:
    listener = Listener("#", maxsize=3)
    for index in range(5):
        listener.offer("execution.w.started", f"event {index}")
    queued = [listener.queue.get_nowait() for _ in range(listener.queue.qsize())]
    assert queued == ["event 0", "event 1", OVERFLOW]


def test_history_is_bounded_and_deduplicated() -> None:
    hub = EventHub(per_execution=2, executions=2)
    for status in ("started", "started", "paused", "resumed"):
        _, event = execution_event(
            execution_id="e1", workflow_id="w", version=1, status=status, now=0.0
        )
        hub.record(event)
    events, dropped = hub.history("e1")
    assert [e.data["status"] for e in events] == ["paused", "resumed"]
    assert dropped
    for execution_id in ("e2", "e3"):
        _, event = execution_event(
            execution_id=execution_id, workflow_id="w", version=1, status="started", now=0.0
        )
        hub.record(event)
    assert hub.history("e1") == ([], False)
