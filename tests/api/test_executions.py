"""Executions: start, read node by node, list with cursor paging, event history."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import CHAIN, FAILING, MAX_BODY, finished, register, start, wait_for

PROBLEM = "application/problem+json"


def test_start_and_read_every_node(client: TestClient) -> None:
    register(client, CHAIN)
    execution_id = start(client, "chain", {"n": 1})
    body = wait_for(client, execution_id, finished)

    assert body["status"] == "succeeded"
    assert body["workflow_id"] == "chain"
    assert body["version"] == 1
    assert body["input"] == {"n": 1}
    assert body["output"] == {"n": 3}
    assert body["error"] is None
    nodes = {n["id"]: n for n in body["nodes"]}
    assert nodes["first"]["output"] == {"n": 2}
    assert nodes["second"]["status"] == "succeeded"
    assert nodes["second"]["attempt"] == 1
    assert nodes["second"]["finished_at"] >= nodes["second"]["started_at"]
    assert nodes["second"]["duration"] >= 0


def test_a_failed_execution_reports_its_error(client: TestClient) -> None:
    register(client, FAILING)
    body = wait_for(client, start(client, "failing"), finished)
    assert body["status"] == "failed"
    assert body["error"]["type"] == "ValueError"
    assert body["error"]["node_id"] == "boom"
    assert body["nodes"][0]["error"]["message"] == "boom"


def test_idempotency_key_returns_the_first_execution(client: TestClient) -> None:
    register(client, CHAIN)
    first = start(client, "chain", {"n": 1}, idempotency_key="order-7")
    again = start(client, "chain", {"n": 1}, idempotency_key="order-7")
    assert again == first


def test_start_a_pinned_version(client: TestClient) -> None:
    register(client, CHAIN)
    register(client, {**CHAIN, "name": "v2"})
    execution_id = start(client, "chain", {"n": 0}, version=1)
    assert wait_for(client, execution_id, finished)["version"] == 1


def test_start_errors(client: TestClient) -> None:
    register(client, CHAIN)
    url = "/v1/workflows/chain/executions"
    unknown = client.post("/v1/workflows/nope/executions", json={"input": 1})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM

    extra = client.post(url, json={"input": 1, "bogus": True})
    assert extra.status_code == 422
    assert extra.json()["problems"][0]["location"] == "body.bogus"

    not_json = client.post(url, content=b"input=1", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415

    too_big = client.post(url, json={"input": "x" * MAX_BODY})
    assert too_big.status_code == 413


def test_input_refused_by_the_schema_is_422(client: TestClient) -> None:
    schema = {"type": "object", "required": ["n"]}
    register(client, {**CHAIN, "input_schema": schema})
    response = client.post("/v1/workflows/chain/executions", json={"input": {"m": 1}})
    assert response.status_code == 422
    assert "schema" in response.json()["detail"]


def test_unknown_execution_is_404(client: TestClient) -> None:
    for path in ("/v1/executions/nope", "/v1/executions/nope/events"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM


def test_events_of_an_execution(client: TestClient) -> None:
    register(client, CHAIN)
    execution_id = start(client, "chain", {"n": 1})
    wait_for(client, execution_id, finished)
    body = client.get(f"/v1/executions/{execution_id}/events").json()
    types = [e["type"] for e in body["events"]]
    assert types[0] == "io.spane.execution.started"
    assert types[-1] == "io.spane.execution.succeeded"
    assert types.count("io.spane.node.succeeded") == 2
    assert all(e["subject"] == execution_id for e in body["events"])
    assert body["truncated"] is False


def test_cursor_paging_newest_first(client: TestClient) -> None:
    register(client, CHAIN)
    register(client, {**CHAIN, "id": "other"})
    started = [start(client, "chain", {"n": i}) for i in range(7)]
    start(client, "other", {"n": 0})
    for execution_id in started:
        wait_for(client, execution_id, finished)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"workflow_id": "chain", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/executions", params=params).json()
        pages += 1
        seen.extend(item["id"] for item in page["items"])
        assert len(page["items"]) <= 3
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert pages == 3
    assert seen == list(reversed(started))

    everything = client.get("/v1/executions", params={"limit": 100}).json()
    assert len(everything["items"]) == 8
    assert "next_cursor" not in everything or everything["next_cursor"] is None


def test_status_filter(client: TestClient) -> None:
    register(client, CHAIN)
    register(client, FAILING)
    ok = start(client, "chain", {"n": 1})
    bad = start(client, "failing")
    wait_for(client, ok, finished)
    wait_for(client, bad, finished)
    failed = client.get("/v1/executions", params={"status": "failed"}).json()["items"]
    assert [i["id"] for i in failed] == [bad]


def test_bad_list_parameters_are_422(client: TestClient) -> None:
    for params in ({"cursor": "%%%"}, {"limit": 0}, {"status": "sleeping"}):
        response = client.get("/v1/executions", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == PROBLEM
