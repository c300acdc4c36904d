"""Structured logs: JSON lines with what a record is about, a task's traceback kept in
its error details and logged by the worker, and SPANE_LOG_LEVEL / SPANE_LOG_FORMAT."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from spane.cli.main import EXIT_USAGE, app
from spane.config import load_settings
from spane.errors import ConfigurationError
from spane.observability.logs import (
    TRACE_ID,
    JsonFormatter,
    configure_logging,
    log_context,
    trimmed_traceback,
)
from spane.schemas.messages import TaskResult
from tests.scenarios.helpers import eventually
from tests.unit.test_metrics import WORKFLOW, stack


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Records of every ``spane`` logger as JSON lines in a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("spane")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def parsed(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_has_the_fields_and_the_context() -> None:
    record = logging.LogRecord("spane.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    with log_context("e1", "charge", 2):
        token = TRACE_ID.set("abc")
        try:
            line = JsonFormatter().format(record)
        finally:
            TRACE_ID.reset(token)
    entry = json.loads(line)
    assert entry["time"].endswith("Z")
    assert {k: entry[k] for k in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "spane.x",
        "message": "hello you",
    }
    assert (entry["execution_id"], entry["node_id"], entry["attempt"]) == ("e1", "charge", 2)
    assert entry["trace_id"] == "abc"
    assert "span_id" not in entry  # unknown fields are left out
    assert "\n" not in line


def test_context_ends_with_its_block_and_record_attributes_win() -> None:
    with log_context("outer"):
        with log_context("inner", "n", 1):
            pass
        record = logging.LogRecord("spane", logging.INFO, __file__, 1, "m", (), None)
        entry = json.loads(JsonFormatter().format(record))
        assert entry["execution_id"] == "outer"
        assert "node_id" not in entry
        record.execution_id = "from-extra"
        assert json.loads(JsonFormatter().format(record))["execution_id"] == "from-extra"
    plain = logging.LogRecord("spane", logging.INFO, __file__, 1, "m", (), None)
    assert "execution_id" not in json.loads(JsonFormatter().format(plain))


def test_an_exception_is_one_field_of_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "spane", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    exception = json.loads(line)["exception"]
    assert exception.startswith("Traceback")
    assert "ValueError: boom" in exception


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize(
    ("log_format", "stream", "is_json"),
    [
        ("auto", io.StringIO(), True),
        ("auto", _Tty(), False),
        ("json", _Tty(), True),
        ("text", io.StringIO(), False),
    ],
)
def test_the_format_setting(log_format: Any, stream: io.StringIO, is_json: bool) -> None:
    configure_logging("info", log_format, stream)
    logging.getLogger("spane.test").info("hi")
    logging.getLogger("spane.test").debug("not at INFO")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    if is_json:
        assert json.loads(lines[0])["message"] == "hi"
    else:
        assert lines[0].endswith("INFO spane.test: hi")


def test_a_long_traceback_keeps_its_end() -> None:
    try:
        raise RuntimeError("x" * 10_000 + " the end")
    except RuntimeError as exc:
        text = trimmed_traceback(exc, limit=4096)
    assert len(text) == 4096
    assert text.startswith("...")
    assert text.rstrip().endswith("the end")


async def test_a_task_traceback_is_in_its_error_details_and_the_worker_log(
    json_lines: io.StringIO,
) -> None:
    async with stack() as s:
        await s.client.register(WORKFLOW)
        result = await s.client.run("shop", {"x": 1, "fail": "always"}, timeout=10)
        snapshot = await s.client.status(result.execution_id)
    assert result.status == "failed"
    error = snapshot.nodes["b"].error
    assert error is not None
    assert error.type == "RuntimeError"
    assert "in flaky" in error.details["traceback"]
    assert error.details["traceback"].rstrip().endswith("flaky failed on attempt 2")
    assert result.error is not None
    assert result.error.details == error.details
    worker_lines = [
        entry
        for entry in parsed(json_lines)
        if entry["logger"] == "spane.worker" and entry["execution_id"] == result.execution_id
    ]
    assert [(e["node_id"], e["attempt"]) for e in worker_lines] == [("b", 1), ("b", 2)]
    assert all("in flaky" in e["exception"] for e in worker_lines)


async def test_orchestrator_lines_carry_the_execution_id(json_lines: io.StringIO) -> None:
    async with stack() as s:
        stray = TaskResult(
            task_id="ghost:a:1", execution_id="ghost", node_id="a", attempt=1, ok=True
        )
        await s.client.bus.publish_inbox([stray])

        def logged() -> list[dict[str, Any]]:
            return [e for e in parsed(json_lines) if e["logger"] == "spane.orchestrator"]

        await eventually(lambda: bool(logged()))
    (entry,) = logged()
    assert entry["execution_id"] == "ghost"
    assert "unknown execution" in entry["message"]


def test_a_bad_log_level_is_a_clear_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "SPANE_LOG_LEVEL" in str(caught.value)
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in str(caught.value)
    monkeypatch.setenv("SPANE_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_the_processes_refuse_a_bad_log_level_without_a_traceback() -> None:
    result = CliRunner().invoke(app, ["orchestrator"], env={"SPANE_LOG_LEVEL": "LOUD"})
    assert result.exit_code == EXIT_USAGE
    assert "SPANE_LOG_LEVEL" in result.output
    assert "Traceback" not in result.output


def test_a_bad_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="SPANE_LOG_FORMAT"):
        load_settings()
