"""The README's code is real: its Python blocks are files under examples/, and they run.

- *Writing tasks* and *Embedding* show ``examples/writing_tasks.py`` and
  ``examples/embedding.py`` in full: the README block must equal the file.
- The opening Python block is a verbatim excerpt of ``examples/shop.py``.
- ``examples/embedding.py`` runs (in memory) and does what its comments say; the
  task kinds of ``examples/writing_tasks.py`` behave as the section describes.
- The README's ``spane run`` command runs, with an input its workflow uses.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import examples.writing_tasks  # noqa: F401  (registers invoice.* and the pdf type)
from examples import embedding
from spane import Engine, ExecutionStatus
from spane.cli.main import EXIT_OK, EXIT_USAGE, app
from spane.workers.registry import default_registry

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
WAIT = 30.0


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else None]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _example(name: str) -> str:
    return (REPO / "examples" / name).read_text(encoding="utf-8")


# ----------------------------------------------------------------- docs = files
@pytest.mark.parametrize(
    ("title", "file"),
    [("Writing tasks", "writing_tasks.py"), ("Embedding", "embedding.py")],
)
def test_the_section_shows_its_example_file_exactly(title: str, file: str) -> None:
    blocks = _python_blocks(_section(title))

    assert blocks == [_example(file)], f"copy examples/{file} into the README's {title!r}"


def test_the_opening_python_block_is_an_excerpt_of_examples_shop() -> None:
    opening = README[: README.index("\n## ")]
    [block] = _python_blocks(opening)

    assert block.strip() in _example("shop.py")


# ----------------------------------------------------------------- embedding.py
async def test_the_embedding_example_runs_as_its_comments_say() -> None:
    outcome = await embedding.main()

    assert outcome["first"] == {
        "status": ExecutionStatus.SUCCEEDED,
        "output": {
            "total_cents": 12_000,  # 10,000 + 20 % VAT, priced by the sync task
            "file": "/inv/ada.pdf",  # the custom `pdf` pool, with the node's config
            "approved_by": "grace",  # the signal's payload
            "sent_after_attempts": 2,  # TaskError(retry_after=...) on attempt 1
            "pages_archived": 30,  # 1.5 s of work under a 1 s timeout: heartbeats
        },
    }
    assert outcome["attempts"] == {"price": 1, "render": 1, "approve": 1, "send": 2, "archive": 1}
    assert outcome["second"] == {"paused": "paused", "finally": ExecutionStatus.CANCELLED}


# ------------------------------------------------------------- writing_tasks.py
async def _run_node(node: dict[str, Any], data: Any) -> tuple[Any, Any]:
    async with Engine(registry=default_registry) as engine:
        record = await engine.register({"id": "docs-task", "nodes": [node]})
        result = await engine.run(record.workflow_id, data, timeout=WAIT)
        state = (await engine.status(result.execution_id)).nodes[node["id"]]
    return result, state


async def test_an_input_that_does_not_fit_its_model_fails_at_once_naming_fields() -> None:
    node = {"id": "price", "function": "invoice.price", "retry": {"max_attempts": 3}}

    result, state = await _run_node(node, {"customer": "ada", "amount_cents": -5})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "InvalidTaskInput"
    assert "email" in result.error.message
    assert "amount_cents" in result.error.message
    assert state.attempt == 1  # not retried, whatever the policy


async def test_a_non_retryable_task_error_fails_the_node_on_its_first_attempt() -> None:
    node = {
        "id": "send",
        "function": "invoice.send",
        "input": {"to": "nobody"},
        "retry": {"max_attempts": 3, "initial_interval": "10ms"},
    }

    result, state = await _run_node(node, None)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("TaskError", "bad address 'nobody'")
    assert state.attempt == 1


async def test_a_cancelled_sync_task_sees_ctx_cancelled_and_its_thread_ends() -> None:
    before = set(threading.enumerate())
    node = {"id": "archive", "function": "invoice.archive", "input": {"pages": 100_000}}
    async with Engine(registry=default_registry) as engine:
        record = await engine.register({"id": "docs-archive", "nodes": [node]})
        started = asyncio.Event()

        async def on_started(_key: str, _event: Any) -> None:
            started.set()

        await engine.subscribe("node.docs-archive.archive.started", on_started)
        execution_id = await engine.start(record.workflow_id)
        await started.wait()
        await engine.cancel(execution_id, "enough")
        result = await engine.wait(execution_id, WAIT)
    assert result.status == ExecutionStatus.CANCELLED

    # 100,000 pages take 5,000 s: the thread ends early only by seeing ctx.cancelled.
    ours = [t for t in set(threading.enumerate()) - before if t.name.startswith("spane-")]
    for thread in ours:  # joined off the loop, which a heartbeat may still need
        await asyncio.to_thread(thread.join, WAIT)  # a hang detector, not a time limit
    assert not [thread.name for thread in ours if thread.is_alive()]


# ------------------------------------------------------------ the spane run line
def _readme_run_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            if line.startswith(".venv/bin/spane run "):
                commands.append(shlex.split(line, comments=True)[1:])
    return commands


def test_the_readme_spane_run_command_runs_and_uses_its_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    [command] = _readme_run_commands()
    given = json.loads(command[command.index("--input") + 1])

    result = CliRunner().invoke(app, [*command, "--quiet"])

    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(result.stdout)
    assert report["day"] == given["day"]
    assert report["orders"] == 5 * given["orders_per_region"]  # five regions


def test_the_fan_out_example_refuses_an_input_it_would_ignore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    args = ["run", "examples/fan_out_fan_in.yaml", "--import", "examples.analytics"]

    result = CliRunner().invoke(app, [*args, "--quiet", "--input", '{"shards": 8}'])

    assert result.exit_code == EXIT_USAGE
    assert "'shards' was unexpected" in result.output
