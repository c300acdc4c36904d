"""Probes, the OpenAPI document, the docs page, problem details for unknown routes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from spane import Engine
from spane.api import create_app
from spane.config import Settings


def test_livez_and_readyz(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) >= {"bus", "state", "definitions"}


class _BrokenDefinitions:
    """A definition store whose server is gone."""

    async def list_dead_letters(self, limit: int = 100) -> list[dict[str, object]]:
        raise ConnectionError("connection refused")


def test_readyz_is_503_when_a_backend_is_down() -> None:
    engine = Engine(settings=Settings(gc_tuning=False))
    app = create_app(engine, manage_engine=False)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["checks"]["engine"] == "not open"
        engine.definitions = _BrokenDefinitions()  # type: ignore[assignment]
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "connection refused" in body["checks"]["definitions"]


def test_openapi_31_and_docs(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path in (
        "/v1/workflows",
        "/v1/workflows/{workflow_id}/executions",
        "/v1/executions",
        "/v1/executions/{execution_id}",
        "/v1/executions/{execution_id}/events",
        "/v1/executions/{execution_id}/signals/{name}",
    ):
        assert path in paths
    body = paths["/v1/workflows"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/yaml"}
    assert "WorkflowSpec" in document["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong_method = client.delete("/v1/workflows")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["title"] == "Method Not Allowed"
