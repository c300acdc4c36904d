"""Control commands: cancel, pause, resume, signals; refusals are 409 with the reason."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from .conftest import BLOCKING, CHAIN, SIGNAL, finished, node_status, register, start, wait_for

PROBLEM = "application/problem+json"


def test_pause_then_resume(client: TestClient, gate: threading.Event) -> None:
    register(client, BLOCKING)
    execution_id = start(client, "blocking", {"x": 1})
    wait_for(client, execution_id, node_status("hold", "running"))

    response = client.post(f"/v1/executions/{execution_id}/pause")
    assert response.status_code == 200, response.text
    assert response.json() == {"execution_id": execution_id, "command": "pause", "signal": None}
    assert client.get(f"/v1/executions/{execution_id}").json()["status"] == "paused"

    assert client.post(f"/v1/executions/{execution_id}/resume").status_code == 200
    gate.set()
    assert wait_for(client, execution_id, finished)["status"] == "succeeded"


def test_cancel_with_a_reason(client: TestClient) -> None:
    register(client, BLOCKING)
    execution_id = start(client, "blocking")
    wait_for(client, execution_id, node_status("hold", "running"))
    response = client.post(f"/v1/executions/{execution_id}/cancel", json={"reason": "changed mind"})
    assert response.status_code == 200, response.text
    assert wait_for(client, execution_id, finished)["status"] == "cancelled"


def test_signal_completes_the_waiting_node(client: TestClient) -> None:
    register(client, SIGNAL)
    execution_id = start(client, "approval", {"order": 1})
    wait_for(client, execution_id, node_status("wait", "waiting"))
    response = client.post(
        f"/v1/executions/{execution_id}/signals/approve", json={"data": {"by": "ada"}}
    )
    assert response.status_code == 200, response.text
    body = wait_for(client, execution_id, finished)
    assert body["status"] == "succeeded"
    assert body["output"] == {"by": "ada"}


def test_refused_commands_are_409_with_the_reason(client: TestClient) -> None:
    register(client, CHAIN)
    execution_id = start(client, "chain", {"n": 1})
    wait_for(client, execution_id, finished)
    for command in ("pause", "resume", "cancel", "signals/approve"):
        response = client.post(f"/v1/executions/{execution_id}/{command}")
        assert response.status_code == 409, command
        assert response.headers["content-type"] == PROBLEM
        body = response.json()
        assert body["type"] == "urn:spane:problem:command-rejected"
        assert body["detail"]


def test_signal_nobody_waits_for_is_409(client: TestClient) -> None:
    register(client, SIGNAL)
    execution_id = start(client, "approval", {"order": 1})
    wait_for(client, execution_id, node_status("wait", "waiting"))
    response = client.post(f"/v1/executions/{execution_id}/signals/other", json={"data": 1})
    assert response.status_code == 409
    assert "other" in response.json()["detail"]


def test_commands_on_an_unknown_execution_are_404(client: TestClient) -> None:
    for command in ("pause", "resume", "cancel", "signals/approve"):
        response = client.post(f"/v1/executions/nope/{command}")
        assert response.status_code == 404, command
        assert response.headers["content-type"] == PROBLEM


def test_command_body_errors(client: TestClient) -> None:
    register(client, SIGNAL)
    execution_id = start(client, "approval", {"order": 1})
    url = f"/v1/executions/{execution_id}/signals/approve"
    assert client.post(url, json={"payload": 1}).status_code == 422
    wrong = client.post(url, content=b"data=1", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 415
