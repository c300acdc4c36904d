"""The ``spane`` command: validate, graph, run (exit codes, output, messages).

Most tests call the Typer app in-process; the Ctrl-C test runs ``python -m spane.cli.main``
in a subprocess so that it can receive a real SIGINT.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from spane.cli.main import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, app
from spane.cli.progress import ExecutionProgress, LineLog, LiveTable
from spane.compiler.compile import compile_plan
from spane.schemas.events import execution_event, node_event
from spane.schemas.loader import load_workflow_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
ORDER = str(EXAMPLES / "order_fulfilment.yaml")
SMALL_ORDER = f"@{EXAMPLES / 'inputs' / 'order_small.json'}"

BROKEN = """\
id: broken
nodes:
  - id: a
    type: function
    function: t.a
  - id: b
    type: function
    function: t.b
    after: [aa]
  - id: c
    type: transform
    after: [a.oops]
    output: "${ nodes.bb.output }"
  - id: a
    type: noop
"""
FAILING = """\
id: cli-failing
nodes:
  - id: start
    type: noop
  - id: boom
    type: fail
    after: [start]
    error: {type: Boom, message: "it broke on ${ input.n }"}
"""
MISSING_TASK = """\
id: cli-missing-task
nodes:
  - id: call
    type: function
    function: nowhere.missing
"""
SLOW = """\
id: cli-slow
nodes:
  - id: first
    type: noop
  - id: wait
    type: delay
    after: [first]
    duration: 30s
"""


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def invoke(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unexpected {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    return result


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------- validate
def test_validate_accepts_every_example() -> None:
    files = sorted(str(path) for path in EXAMPLES.glob("*.yaml"))

    result = invoke("validate", *files)

    assert result.exit_code == EXIT_OK, result.output
    assert f"{ORDER}: ok (7 nodes)" in result.stdout.splitlines()
    assert len(result.stdout.splitlines()) == len(files)


def test_validate_lists_every_problem_with_its_location(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", BROKEN)

    result = invoke("validate", broken, ORDER)

    assert result.exit_code == EXIT_FAILED
    lines = result.stdout.splitlines()
    assert f"{broken}: nodes[3].id: duplicate node id 'a' (first at nodes[0])" in lines
    assert f"{broken}: nodes[1].after[0]: unknown node 'aa' (did you mean 'a'?)" in lines
    assert any(
        line.startswith(f"{broken}: nodes[2].after[0]: unknown port 'oops'") for line in lines
    )
    assert any(
        line.startswith(f"{broken}: nodes[2].output: unknown node 'bb'") and "'b'" in line
        for line in lines
    )
    assert f"{ORDER}: ok (7 nodes)" in lines


def test_validate_reports_structural_problems_together(tmp_path: Path) -> None:
    text = "id: Bad Id\nnodes:\n  - id: a\n    functon: t.a\n  - id: b\n    type: http\n"
    path = write(tmp_path, "structure.yaml", text)

    result = invoke("validate", path)

    assert result.exit_code == EXIT_FAILED
    out = result.stdout
    assert f"{path}: id: " in out
    assert f"{path}: nodes[0].functon: unknown field" in out
    assert f"{path}: nodes[1].request: " in out


def test_validate_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "syntax.yaml", "id: x\nnodes:\n  - id: a\n    type: [\n")

    result = invoke("validate", path)

    assert result.exit_code == EXIT_FAILED
    assert result.stdout.startswith(f"{path}: line 5, column 1: not valid YAML/JSON")
    assert len(result.stdout.splitlines()) == 1


def test_validate_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")

    result = invoke("validate", missing, ORDER)

    assert result.exit_code == EXIT_USAGE
    assert f"{missing}: no such file" in result.stderr
    assert f"{ORDER}: ok (7 nodes)" in result.stdout


def test_validate_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path))

    assert result.exit_code == EXIT_USAGE
    assert "is a directory" in result.stderr


# ---------------------------------------------------------------------- graph
def test_graph_describes_the_plan_in_words() -> None:
    result = invoke("graph", ORDER)

    assert result.exit_code == EXIT_OK
    out = result.stdout
    assert "Workflow 'order-fulfilment' version 1 (7 nodes" in out
    assert "Roots: validate" in out
    assert "Branch points: charge, route" in out
    assert "Convergence points: ship" in out
    assert "refund [function, task]; after charge.error" in out


def test_graph_mermaid_draws_ports() -> None:
    result = invoke("graph", ORDER, "--mermaid")

    assert result.exit_code == EXIT_OK
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert any("-.->|error|" in line for line in lines)
    assert any("-.->|always|" in line for line in lines)
    assert any("-->|big|" in line for line in lines)


def test_graph_of_an_invalid_workflow_prints_problems(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", BROKEN)

    result = invoke("graph", broken)

    assert result.exit_code == EXIT_FAILED
    assert "unknown node 'aa'" in result.stderr
    assert result.stdout == ""


# ------------------------------------------------------------------------ run
def test_run_prints_the_output_as_json() -> None:
    result = invoke("run", ORDER, "--import", "examples.shop", "--input", SMALL_ORDER)

    assert result.exit_code == EXIT_OK, result.stderr
    output = json.loads(result.stdout)
    assert output["order_id"] == "A-1001"
    assert output["status"] == "shipped"
    # Not a terminal: one progress line per event on stderr.
    assert "node validate started (attempt 1)" in result.stderr
    assert "node refund skipped" in result.stderr
    assert "execution order-fulfilment" in result.stderr


def test_run_quiet_prints_only_the_output() -> None:
    result = invoke("run", ORDER, "-m", "examples.shop", "-i", SMALL_ORDER, "--quiet")

    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["status"] == "shipped"
    assert result.stderr == ""


def test_run_input_from_stdin() -> None:
    order = (EXAMPLES / "inputs" / "order_big.json").read_text(encoding="utf-8")

    result = invoke("run", ORDER, "-m", "examples.shop", "-i", "@-", "-q", input=order)

    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["reviewed"] is True


def test_run_import_accepts_a_python_file_path() -> None:
    result = invoke("run", ORDER, "-m", "examples/shop.py", "-i", SMALL_ORDER, "-q")

    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["status"] == "shipped"


def test_run_failed_execution_exits_1_with_the_error(tmp_path: Path) -> None:
    path = write(tmp_path, "failing.yaml", FAILING)

    result = invoke("run", path, "--input", '{"n": 7}')

    assert result.exit_code == EXIT_FAILED
    assert result.stdout == ""
    assert "failed: node boom (attempt 1): Boom: it broke on 7" in result.stderr


def test_run_timeout_cancels_the_execution(tmp_path: Path) -> None:
    path = write(tmp_path, "slow.yaml", SLOW)

    result = invoke("run", path, "--timeout", "0.3")

    assert result.exit_code == EXIT_FAILED
    assert "did not finish within 0.3 s and was cancelled" in result.stderr
    assert "node wait cancelled" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "--input: the value is not valid JSON: "),
        ("@/nonexistent/input.json", "--input: cannot read '/nonexistent/input.json'"),
    ],
)
def test_run_bad_input_is_a_usage_error(value: str, message: str) -> None:
    result = invoke("run", ORDER, "-m", "examples.shop", "--input", value)

    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr
    assert result.stdout == ""


def test_run_input_refused_by_the_schema_is_a_usage_error() -> None:
    http = str(EXAMPLES / "http_enrichment.yaml")

    result = invoke("run", http, "--input", '{"user_id": "one"}')

    assert result.exit_code == EXIT_USAGE
    assert "user_id" in result.stderr


def test_run_unknown_import_is_a_usage_error() -> None:
    result = invoke("run", ORDER, "--import", "no_such_module_for_spane_tests")

    assert result.exit_code == EXIT_USAGE
    assert "cannot import 'no_such_module_for_spane_tests'" in result.stderr
    assert "ModuleNotFoundError" in result.stderr


def test_run_unregistered_task_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "missing.yaml", MISSING_TASK)

    result = invoke("run", path)

    assert result.exit_code == EXIT_USAGE
    assert "no function 'nowhere.missing' is registered" in result.stderr
    assert "--import MODULE" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_run_invalid_workflow_lists_every_problem(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.yaml", BROKEN)

    result = invoke("run", broken, ORDER)

    assert result.exit_code == EXIT_USAGE
    assert "unknown node 'aa'" in result.stderr
    assert "duplicate node id 'a'" in result.stderr
    assert result.stdout == ""


def test_run_unknown_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path / "nope.yaml"))

    assert result.exit_code == EXIT_USAGE
    assert "no such file" in result.stderr


def test_ctrl_c_cancels_the_execution(tmp_path: Path) -> None:
    path = write(tmp_path, "slow.yaml", SLOW)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "spane.cli.main", "run", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if "node wait started" in line or not line:
            break
    assert any("node wait started" in line for line in seen), "".join(seen)

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert stdout == ""
    assert "node wait cancelled" in stderr
    assert "cancelled (interrupted)" in stderr
    assert "Traceback" not in stderr


def test_version() -> None:
    result = invoke("--version")

    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith("spane ")


def test_building_the_app_loads_no_engine() -> None:
    """``spane --help`` stays fast: the commands import the engine when they run."""
    heavy = (
        "spane.engine",
        "spane.compiler",
        "spane.core",
        "spane.orchestrator",
        "spane.workers",
        "spane.backends",
        "spane.bus",
        "spane.state",
        "spane.config",
        "spane.cli.runner",
        "spane.cli.progress",
        "aio_pika",
        "redis",
        "pymongo",
        "rich.live",
        "asyncio",
    )
    code = (
        "import sys, spane.cli.main\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}"
        f" or m.startswith({heavy!r})))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()

    assert loaded == "[]"


# ------------------------------------------------------------------- progress
def _progress() -> ExecutionProgress:
    plan = compile_plan(load_workflow_file(ORDER))
    return ExecutionProgress.for_plan(plan, "e1")


def _feed(progress: ExecutionProgress, view: LineLog | None = None) -> None:
    base: dict[str, Any] = {"execution_id": "e1", "workflow_id": "order-fulfilment", "version": 1}
    events = [
        execution_event(**base, status="started", now=100.0),
        node_event(**base, node_id="validate", attempt=1, status="started", now=100.0),
        node_event(**base, node_id="validate", attempt=1, status="succeeded", now=100.25),
        node_event(**base, node_id="charge", attempt=1, status="started", now=100.3),
        node_event(
            **base,
            node_id="charge",
            attempt=1,
            status="retrying",
            now=100.4,
            extra={"error": {"type": "ConnectionError", "message": "gateway timed out"}},
        ),
        node_event(**base, node_id="charge", attempt=2, status="started", now=100.6),
        node_event(**base, node_id="refund", attempt=0, status="skipped", now=100.7),
        # Another execution's event is ignored.
        node_event(
            **(base | {"execution_id": "other"}),
            node_id="ship",
            attempt=1,
            status="started",
            now=100.7,
        ),
    ]
    for routing_key, event in events:
        if progress.apply(routing_key, event) and view is not None:
            view.update(routing_key, event)


def test_progress_folds_events_into_rows() -> None:
    progress = _progress()

    _feed(progress)

    rows = progress.rows
    assert list(rows) == list(compile_plan(load_workflow_file(ORDER)).order)
    assert progress.status == "started"
    assert (rows["validate"].status, rows["validate"].attempt) == ("succeeded", 1)
    assert rows["validate"].elapsed(0) == pytest.approx(0.25)
    assert (rows["charge"].label, rows["charge"].attempt) == ("running", 2)
    assert rows["charge"].detail == "attempt 1: ConnectionError: gateway timed out"
    assert rows["refund"].status == "skipped"
    assert rows["ship"].status == "pending"


def test_line_log_writes_one_line_per_event() -> None:
    progress = _progress()
    stream = io.StringIO()

    _feed(progress, LineLog(progress, stream))

    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "execution order-fulfilment e1 started",
        "node validate started (attempt 1)",
        "node validate succeeded (attempt 1, 250 ms)",
        "node charge started (attempt 1)",
        "node charge retrying (attempt 1): ConnectionError: gateway timed out",
        "node charge started (attempt 2)",
        "node refund skipped",
    ]


def test_live_table_renders_every_node() -> None:
    progress = _progress()
    _feed(progress)
    console = Console(file=io.StringIO(), width=140, color_system=None)

    console.print(LiveTable(progress, console).render())

    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "order-fulfilment e1 started" in text
    for node_id in ("validate", "charge", "route", "review", "ship", "refund", "notify"):
        assert node_id in text
    for status in ("succeeded", "running", "skipped", "pending"):
        assert status in text
    assert "ConnectionError: gateway timed out" in text
