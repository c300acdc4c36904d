"""``POST /v1/hooks/{path}``: webhook triggers, signatures, idempotent deliveries."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from spane.api.routes.hooks import sign

from .conftest import finished, register, wait_for

SECRET = "s3cret-for-tests"
SIGNED = {
    "id": "orders",
    "triggers": [{"webhook": {"path": "shop/orders", "secret_env": "SPANE_TEST_HOOK_SECRET"}}],
    "nodes": [{"id": "echo", "function": "t.echo"}],
}
OPEN = {
    "id": "pings",
    "triggers": [
        {"event": "x.y"},
        {"webhook": {"path": "ping"}, "input": {"got": "${ event.data.n }", "via": "hook"}},
    ],
    "nodes": [{"id": "echo", "function": "t.echo"}],
}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_TEST_HOOK_SECRET", SECRET)


def _post(client: TestClient, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        f"/v1/hooks/{path}",
        content=body,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _executions(client: TestClient, workflow_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(
        "/v1/executions", params={"workflow_id": workflow_id}
    ).json()["items"]
    return items


def test_signed_delivery_starts_the_workflow_with_the_body(client: TestClient) -> None:
    register(client, SIGNED)
    body = json.dumps({"order": 42}).encode()
    response = _post(client, "shop/orders", body, {"X-Spane-Signature": sign(SECRET, body)})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["path"] == "shop/orders"
    (execution_id,) = accepted["execution_ids"]
    assert accepted["executions"] == [
        {"workflow_id": "orders", "version": 1, "trigger": 0, "execution_id": execution_id}
    ]
    done = wait_for(client, execution_id, finished)
    assert done["status"] == "succeeded"
    assert done["input"] == {"order": 42}
    assert done["output"] == {"order": 42}


def test_signed_with_a_timestamp(client: TestClient) -> None:
    register(client, SIGNED)
    body = b'{"a": 1}'
    now = str(int(time.time()))
    headers = {"X-Spane-Timestamp": now, "X-Spane-Signature": sign(SECRET, body, now)}
    assert _post(client, "shop/orders", body, headers).status_code == 202
    # the timestamp is part of the signed text: the body's plain signature does not do
    headers = {"X-Spane-Timestamp": now, "X-Spane-Signature": sign(SECRET, body)}
    assert _post(client, "shop/orders", body, headers).status_code == 401


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing X-Spane-Signature"),
        ({"X-Spane-Signature": "sha256=" + "0" * 64}, "does not match"),
        ({"X-Spane-Signature": sign("wrong-secret", b'{"order": 1}')}, "does not match"),
        ({"X-Spane-Signature": sign(SECRET, b'{"order": 2}')}, "does not match"),  # other body
        (
            {"X-Spane-Timestamp": "1000", "X-Spane-Signature": sign(SECRET, b'{"order": 1}', 1000)},
            "300 s away",
        ),
        ({"X-Spane-Timestamp": "soon", "X-Spane-Signature": "sha256=00"}, "Unix seconds"),
    ],
)
def test_bad_signature_is_401_and_starts_nothing(
    client: TestClient, headers: dict[str, str], reason: str
) -> None:
    register(client, SIGNED)
    response = _post(client, "shop/orders", b'{"order": 1}', headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.json()["detail"]
    assert "www-authenticate" in response.headers
    assert _executions(client, "orders") == []


def test_repeated_delivery_starts_nothing_new(client: TestClient) -> None:
    register(client, SIGNED)
    body = b'{"order": 7}'
    headers = {"X-Spane-Signature": sign(SECRET, body), "X-Spane-Delivery": "d-123"}
    first = _post(client, "shop/orders", body, headers)
    second = _post(client, "shop/orders", body, headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["execution_ids"] == second.json()["execution_ids"]
    assert second.json()["delivery"] == "d-123"
    wait_for(client, first.json()["execution_ids"][0], finished)
    assert len(_executions(client, "orders")) == 1
    headers["X-Spane-Delivery"] = "d-124"
    third = _post(client, "shop/orders", body, headers)
    assert third.json()["execution_ids"] != first.json()["execution_ids"]


def test_unsigned_hook_renders_the_trigger_input(client: TestClient) -> None:
    register(client, OPEN)
    response = _post(client, "ping", b'{"n": 5}')
    assert response.status_code == 202, response.text
    (started,) = response.json()["executions"]
    assert started["trigger"] == 1
    done = wait_for(client, started["execution_id"], finished)
    assert done["input"] == {"got": 5, "via": "hook"}


def test_empty_body_is_null_input(client: TestClient) -> None:
    register(client, {**OPEN, "triggers": [{"webhook": {"path": "ping"}}]})
    response = client.post("/v1/hooks/ping")
    assert response.status_code == 202, response.text
    done = wait_for(client, response.json()["execution_ids"][0], finished)
    assert done["input"] is None


def test_every_workflow_at_the_path_starts(client: TestClient) -> None:
    register(client, {**OPEN, "triggers": [{"webhook": {"path": "ping"}}]})
    register(client, {**OPEN, "id": "pongs", "triggers": [{"webhook": {"path": "ping"}}]})
    response = _post(client, "ping", b"{}")
    workflows = [item["workflow_id"] for item in response.json()["executions"]]
    assert workflows == ["pings", "pongs"]


def test_unknown_path_is_404(client: TestClient) -> None:
    register(client, SIGNED)
    response = _post(client, "nope", b"{}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_invalid_json_is_422_after_the_signature(client: TestClient) -> None:
    register(client, SIGNED)
    body = b"{not json"
    assert _post(client, "shop/orders", body).status_code == 401
    response = _post(client, "shop/orders", body, {"X-Spane-Signature": sign(SECRET, body)})
    assert response.status_code == 422


def test_missing_secret_on_the_server_refuses(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(client, SIGNED)
    monkeypatch.delenv("SPANE_TEST_HOOK_SECRET")
    body = b"{}"
    response = _post(client, "shop/orders", body, {"X-Spane-Signature": sign(SECRET, body)})
    assert response.status_code == 503
    assert "SPANE_TEST_HOOK_SECRET" in response.json()["detail"]
    assert _executions(client, "orders") == []


def test_input_schema_mismatch_is_422(client: TestClient) -> None:
    strict = {
        **OPEN,
        "triggers": [{"webhook": {"path": "ping"}}],
        "input_schema": {"type": "object", "required": ["n"]},
    }
    register(client, strict)
    assert _post(client, "ping", b'{"m": 1}').status_code == 422
    assert _post(client, "ping", b'{"n": 1}').status_code == 202
