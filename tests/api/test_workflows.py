"""``/v1/workflows``: registration (JSON, YAML), versions, listing, errors."""

from __future__ import annotations

import json

import yaml
from fastapi.testclient import TestClient

from .conftest import CHAIN, MAX_BODY, register

PROBLEM = "application/problem+json"


def test_register_json_then_read_it_back(client: TestClient) -> None:
    response = client.post("/v1/workflows", json=CHAIN)
    assert response.status_code == 201
    body = response.json()
    assert body["id"] == "chain"
    assert body["version"] == 1

    latest = client.get("/v1/workflows/chain").json()
    assert latest["version"] == 1
    assert [n["id"] for n in latest["spec"]["nodes"]] == ["first", "second"]
    assert client.get("/v1/workflows/chain/versions/1").json()["checksum"] == body["checksum"]


def test_register_yaml(client: TestClient) -> None:
    response = client.post(
        "/v1/workflows",
        content=yaml.safe_dump(CHAIN),
        headers={"Content-Type": "application/yaml"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == "chain"


def test_identical_content_keeps_its_version_and_a_change_adds_one(client: TestClient) -> None:
    assert register(client, CHAIN) == 1
    assert register(client, CHAIN) == 1
    changed = {**CHAIN, "name": "Chain, renamed"}
    assert register(client, changed) == 2
    assert client.get("/v1/workflows/chain").json()["name"] == "Chain, renamed"
    assert client.get("/v1/workflows/chain/versions/1").json()["name"] is None


def test_list_has_the_latest_version_of_each(client: TestClient) -> None:
    register(client, CHAIN)
    register(client, {**CHAIN, "name": "v2"})
    register(client, {**CHAIN, "id": "another"})
    items = client.get("/v1/workflows").json()["items"]
    assert [(i["id"], i["version"]) for i in items] == [("another", 1), ("chain", 2)]


def test_unknown_workflow_and_version_are_404(client: TestClient) -> None:
    register(client, CHAIN)
    for path in ("/v1/workflows/nope", "/v1/workflows/chain/versions/7"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 404


def test_a_bad_definition_lists_every_problem_with_its_location(client: TestClient) -> None:
    bad = {
        "id": "bad",
        "nodes": [
            {"id": "a", "function": "t.echo", "after": ["missing"]},
            {"id": "a", "function": "t.echo"},
        ],
    }
    response = client.post("/v1/workflows", json=bad)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:spane:problem:invalid-workflow"
    locations = {p["location"] for p in body["problems"]}
    assert "nodes[0].after[0]" in locations
    assert len(body["problems"]) >= 2
    assert client.get("/v1/workflows/bad").status_code == 404


def test_structural_problems_are_422_with_locations(client: TestClient) -> None:
    response = client.post("/v1/workflows", json={"id": "Bad Id!", "nodes": [{"id": "x"}]})
    assert response.status_code == 422
    assert {p["location"] for p in response.json()["problems"]} >= {"id"}


def test_malformed_json_and_yaml_are_422(client: TestClient) -> None:
    response = client.post(
        "/v1/workflows", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    response = client.post(
        "/v1/workflows", content=b"id: [unclosed", headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 422
    assert response.json()["problems"]


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/v1/workflows", content=json.dumps(CHAIN), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert "text/plain" in response.json()["detail"]


def test_oversized_body_is_413(client: TestClient) -> None:
    big = {**CHAIN, "description": "x" * (MAX_BODY + 1)}
    response = client.post("/v1/workflows", json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    def chunks():
        yield b'{"id": "chain", "description": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = client.post(
        "/v1/workflows", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
