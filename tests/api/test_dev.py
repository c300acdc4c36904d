"""``spane dev``: options, definition loading, and the app it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from spane.cli import dev, dev_server

from .conftest import CHAIN


def _app() -> typer.Typer:
    app = typer.Typer()
    dev.register(app)

    @app.command()
    def other() -> None:  # a second command, so that `dev` is a subcommand
        """Another command."""

    return app


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(_app(), ["dev", "--help"])
    assert result.exit_code == 0
    for option in ("--import", "--workflows", "--host", "--port"):
        assert option in result.output


def test_an_unimportable_module_is_a_usage_error() -> None:
    result = CliRunner().invoke(_app(), ["dev", "--import", "no_such_module_here"])
    assert result.exit_code == 2
    assert "no_such_module_here" in result.output


def test_bad_definitions_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: a\nnodes: [{id: x, function: f, after: [nope]}]\n")
    (tmp_path / "b.json").write_text('{"id": "b"}')
    (tmp_path / "notes.txt").write_text("ignored")
    result = CliRunner().invoke(_app(), ["dev", "--workflows", str(tmp_path)])
    assert result.exit_code == 2
    assert "a.yaml: nodes[0].after[0]" in result.output
    assert "b.json: nodes" in result.output


def test_not_a_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["dev", "--workflows", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_serves_an_engine_with_the_definitions_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(CHAIN))
    (tmp_path / "other.json").write_text('{"id": "other", "nodes": [{"id": "n", "type": "noop"}]}')
    served: dict[str, Any] = {}

    def fake_serve(app: FastAPI, host: str, port: int, log_level: str) -> None:
        served.update(host=host, port=port)
        with TestClient(app) as client:
            served["workflows"] = client.get("/v1/workflows").json()["items"]
            start = client.post("/v1/workflows/other/executions", json={"input": {"a": 1}})
            served["start"] = start.status_code

    monkeypatch.setattr(dev_server, "serve", fake_serve)
    args = ["dev", "--workflows", str(tmp_path), "--port", "9999", "--host", "0.0.0.0"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert served["host"] == "0.0.0.0"
    assert served["port"] == 9999
    assert [w["id"] for w in served["workflows"]] == ["chain", "other"]
    assert served["start"] == 201
