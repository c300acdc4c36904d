"""API keys (spane.api.auth): bearer keys with scopes on /v1, open probes and hooks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.websockets import WebSocketDisconnect

from spane import Engine
from spane.api import ApiConfig, create_app
from spane.api.auth import ApiKeys, ApiScope, digest, load_api_keys
from spane.config import Settings
from spane.errors import ConfigurationError

from .conftest import CHAIN, MAX_BODY, _registry

READER = "reader-key-0123456789"
WRITER = "writer-key-0123456789"
ADMIN = "admin-key-0123456789"
BOTH = "both-key-0123456789"
KEYS = f"{READER}:read, {WRITER}:write,sha256={digest(ADMIN)}:admin,{BOTH}:read+write"
HOOKED = {**CHAIN, "id": "hooked", "triggers": [{"webhook": {"path": "in"}}]}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured() -> Iterator[TestClient]:
    gate = threading.Event()
    settings = Settings(gc_tuning=False, api_keys=SecretStr(KEYS))
    engine = Engine(registry=_registry(gate), settings=settings)
    app = create_app(engine, config=ApiConfig(max_body_bytes=MAX_BODY))
    with TestClient(app) as client:
        yield client
        gate.set()


def test_no_key_is_401_with_a_bearer_challenge(secured: TestClient) -> None:
    response = secured.get("/v1/workflows")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize(
    "header", ["Bearer nope", "Basic " + READER, "Bearer", f"bearer {READER}x"]
)
def test_unknown_or_malformed_key_is_401(secured: TestClient, header: str) -> None:
    response = secured.get("/v1/workflows", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_scopes(secured: TestClient) -> None:
    assert secured.get("/v1/workflows", headers=_bearer(READER)).status_code == 200
    assert secured.get("/v1/workflows", headers={"Authorization": f"bearer {READER}"}).is_success
    refused = secured.post("/v1/workflows", json=CHAIN, headers=_bearer(READER))
    assert refused.status_code == 403
    assert 'scope="write"' in refused.headers["www-authenticate"]
    assert "'write'" in refused.json()["detail"]
    assert secured.post("/v1/workflows", json=CHAIN, headers=_bearer(WRITER)).status_code == 201
    assert secured.get("/v1/workflows", headers=_bearer(WRITER)).status_code == 403
    assert secured.get("/v1/workflows/chain", headers=_bearer(ADMIN)).status_code == 200
    started = secured.post(
        "/v1/workflows/chain/executions", json={"input": {"n": 1}}, headers=_bearer(ADMIN)
    )
    assert started.status_code == 201
    assert secured.get("/v1/executions", headers=_bearer(BOTH)).status_code == 200


def test_probes_docs_and_hooks_stay_open(secured: TestClient) -> None:
    for path in ("/livez", "/readyz", "/docs", "/openapi.json"):
        assert secured.get(path).status_code == 200, path
    secured.post("/v1/workflows", json=HOOKED, headers=_bearer(ADMIN))
    assert secured.post("/v1/hooks/in", json={"n": 1}).status_code == 202
    assert secured.post("/v1/hooks/unknown", json={}).status_code == 404


def test_websocket_needs_a_read_key(secured: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect), secured.websocket_connect("/v1/events") as socket:
        socket.receive_json()
    with secured.websocket_connect("/v1/events", headers=_bearer(READER)):
        pass


def test_without_keys_the_api_is_open(client: TestClient) -> None:
    assert client.get("/v1/workflows").status_code == 200


def test_keys_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# ops\n{READER}:read\n\nsha256={digest(ADMIN)}:admin  # root\n")
    keys = load_api_keys(None, str(path))
    assert keys is not None
    assert keys.granted(READER) == frozenset({ApiScope.READ})
    assert keys.granted(ADMIN) == frozenset({ApiScope.ADMIN})
    assert keys.granted("other") is None
    assert READER not in repr(keys)  # only digests are kept


def test_keys_from_settings_and_file_add_up(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{READER}:write\n")
    keys = load_api_keys(f"{READER}:read", str(path))
    assert keys is not None
    assert keys.granted(READER) == frozenset({ApiScope.READ, ApiScope.WRITE})


def test_no_keys_configured_means_none() -> None:
    assert load_api_keys(None, None) is None
    assert load_api_keys(" , ", None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("justakey", "'<key>:<scope>"),
        ("k:superuser", "unknown scope 'superuser'"),
        ("sha256=abc:read", "64 hex digits"),
        ("a key:read", "no spaces"),
    ],
)
def test_bad_entries_are_configuration_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ApiKeys.from_text(text)


def test_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SPANE_API_KEYS_FILE"):
        load_api_keys(None, str(tmp_path / "missing"))
