"""WebSocket ``/v1/events``: live lifecycle CloudEvents matching a routing pattern."""

from __future__ import annotations

import json

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


def test_a_stream_resumes_after_an_event_id(client: TestClient) -> None:
    """A client that lost its connection resumes with ``?after=<last event id>``: what it
    missed is replayed in order, then the stream goes on live."""
    register(client, CHAIN)
    with client.websocket_connect("/v1/events?filter=execution.chain.*") as ws:
        first_id = start(client, "chain", {"n": 1})
        seen = ws.receive_json()
        assert seen["type"] == "io.spane.execution.started"
    assert wait_for(client, first_id, finished)["status"] == "succeeded"
    second_id = start(client, "chain", {"n": 5})
    assert wait_for(client, second_id, finished)["status"] == "succeeded"
    with client.websocket_connect(f"/v1/events?filter=execution.chain.*&after={seen['id']}") as ws:
        missed = [ws.receive_json() for _ in range(3)]
        third_id = start(client, "chain", {"n": 9})
        live = ws.receive_json()
    assert [(e["subject"], e["type"].rsplit(".", 1)[1]) for e in missed] == [
        (first_id, "succeeded"),
        (second_id, "started"),
        (second_id, "succeeded"),
    ]
    assert (live["subject"], live["type"]) == (third_id, "io.spane.execution.started")


def test_resuming_after_an_unknown_event_closes_with_1008(client: TestClient) -> None:
    with (
        client.websocket_connect("/v1/events?after=no-such-event") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == 1008
    assert "not in the recent history" in str(closed.value.reason)


async def test_the_recent_log_is_bounded_and_replays_only_what_follows() -> None:
    hub = EventHub(recent=3)
    keys = []
    for index in range(5):
        key, event = execution_event(
            execution_id=f"e{index}", workflow_id="w", version=1, status="started", now=0.0
        )
        keys.append(event.id)
        await hub._on_event(key, event)
    assert hub.listen_after("#", keys[0]) is None  # fell out of the log
    listener = hub.listen_after("#", keys[2])
    assert listener is not None
    replayed = [str(listener.queue.get_nowait()) for _ in range(listener.queue.qsize())]
    assert [json.loads(r)["subject"] for r in replayed] == ["e3", "e4"]
