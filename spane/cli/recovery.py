"""``spane retry`` and ``spane replay``: run a failed execution again, or a new one from a
chosen node of an old one (:mod:`spane.recovery`).

Like the other distributed commands they need the server URLs; the engine is imported
only when a command runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from spane.cli import ops
from spane.cli.common import EXIT_FAILED, EXIT_OK, parse_input, spane_errors

if TYPE_CHECKING:
    from spane.engine import Engine

__all__ = ["register", "replay", "retry"]

_WAIT = typer.Option(help="Wait for the execution to finish and print its output.")
_TIMEOUT = typer.Option(help="With --wait: seconds.")


async def _report(engine: Engine, execution_id: str, wait: bool, timeout: float | None) -> int:
    """Print the id, or with ``wait`` the output (exit 1 unless it succeeded)."""
    if not wait:
        typer.echo(execution_id)
        return EXIT_OK
    result = await engine.wait(execution_id, timeout)
    if result.succeeded:
        typer.echo(json.dumps(result.output, indent=2))
        return EXIT_OK
    error = result.error.message if result.error else ""
    typer.echo(f"execution {execution_id} {result.status}: {error}", err=True)
    return EXIT_FAILED


def retry(
    execution: Annotated[str, typer.Argument(help="Execution id.")],
    wait: Annotated[bool, _WAIT] = False,
    timeout: Annotated[float | None, _TIMEOUT] = None,
) -> None:
    """Run a failed, timed-out or cancelled execution again from the nodes that did
    not succeed; prints its id (or, with --wait, its output)."""

    async def go() -> int:
        async with ops._client("spane retry") as engine:
            await engine.retry(execution)
            return await _report(engine, execution, wait, timeout)

    ops._run(go)


def replay(
    execution: Annotated[str, typer.Argument(help="Execution id to replay.")],
    from_node: Annotated[
        str, typer.Option("--from", help="The node to run again, with what follows it.")
    ],
    input_text: Annotated[
        str | None,
        typer.Option("--input", help="New input: JSON, @file.json or @- (default: the old)."),
    ] = None,
    wait: Annotated[bool, _WAIT] = False,
    timeout: Annotated[float | None, _TIMEOUT] = None,
) -> None:
    """Start a new execution from one node of an old one, reusing the other nodes'
    outputs; prints the new execution's id (or, with --wait, its output)."""
    with spane_errors():
        data = parse_input(input_text)

    async def go() -> int:
        async with ops._client("spane replay") as engine:
            if input_text is None:
                new_id = await engine.replay(execution, from_node)
            else:
                new_id = await engine.replay(execution, from_node, data)
            return await _report(engine, new_id, wait, timeout)

    ops._run(go)


def register(app: typer.Typer) -> None:
    app.command()(retry)
    app.command()(replay)
