"""``GET /v1/executions/{id}/explain``, ``/nodes/{node}``, ``/v1/workflows/{id}/graph``
and the dashboard's static files."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from spane.api.routes.dashboard import STATIC

from .conftest import BLOCKING, CHAIN, SIGNAL, finished, node_status, register, start, wait_for

PROBLEM = "application/problem+json"


def test_explain_says_what_each_node_waits_on(client: TestClient) -> None:
    register(client, SIGNAL)
    execution_id = start(client, "approval", {"order": 1})
    wait_for(client, execution_id, node_status("wait", "waiting"))
    response = client.get(f"/v1/executions/{execution_id}/explain")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "running"
    nodes = {n["node_id"]: n for n in body["nodes"]}
    assert set(nodes) == {"wait", "ship"}
    assert nodes["wait"]["kind"] == "signal"
    assert nodes["wait"]["signal"] == "approve"
    assert "approve" in nodes["wait"]["message"]
    assert nodes["ship"]["kind"] == "upstream"
    assert nodes["ship"]["open_edges"][0]["edge"] == "wait.success"


def test_explain_a_running_task_names_its_pool(client: TestClient, gate: threading.Event) -> None:
    register(client, BLOCKING)
    execution_id = start(client, "blocking")
    wait_for(client, execution_id, node_status("hold", "running"))
    hold = client.get(f"/v1/executions/{execution_id}/explain").json()["nodes"][0]
    assert hold["kind"] == "worker"
    assert hold["pool"] == "function"
    assert hold["pool_consumers"] == 1
    gate.set()
    wait_for(client, execution_id, finished)
    done = client.get(f"/v1/executions/{execution_id}/explain").json()
    assert done["nodes"] == []


def test_explain_and_node_of_an_unknown_execution_are_404(client: TestClient) -> None:
    for path in ("/v1/executions/nope/explain", "/v1/executions/nope/nodes/x"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == PROBLEM


def test_node_detail_has_input_and_output(client: TestClient) -> None:
    register(client, CHAIN)
    execution_id = start(client, "chain", {"n": 1})
    wait_for(client, execution_id, finished)
    body = client.get(f"/v1/executions/{execution_id}/nodes/second").json()
    assert body["state"]["input"] == {"n": 2}
    assert body["state"]["output"] == {"n": 3}
    assert client.get(f"/v1/executions/{execution_id}/nodes/zzz").status_code == 404


def test_workflow_graph(client: TestClient) -> None:
    register(client, SIGNAL)
    response = client.get("/v1/workflows/approval/graph")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [n["id"] for n in body["nodes"]] == ["prepare", "wait", "ship"]
    assert body["nodes"][1]["signal"] == "approve"
    assert {"source": "wait", "port": "success", "target": "ship"} in body["edges"]
    assert body["roots"] == ["prepare"]
    assert "id: approval" in body["definition_yaml"]
    assert client.get("/v1/workflows/nope/graph").status_code == 404


def test_dashboard_is_served_with_a_fallback_for_pages_only(client: TestClient) -> None:
    index = client.get("/")
    if not (STATIC / "index.html").is_file():
        assert index.status_code == 404
        return
    assert index.status_code == 200
    assert '<div id="root">' in index.text
    page = client.get("/some/page", headers={"accept": "text/html"})
    assert page.status_code == 200
    api = client.get("/v1/nothing-here", headers={"accept": "text/html"})
    assert api.status_code == 404
    assert api.headers["content-type"] == PROBLEM
    assert client.get("/v2/nothing").status_code == 404
