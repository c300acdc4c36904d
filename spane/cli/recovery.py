"""``spane retry`` and ``spane replay``: run a failed execution again, or a new one from a
chosen node of an old one (:mod:`spane.recovery`).

Like the other distributed commands they need the server URLs; the engine is imported
only when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from spane.cli import ops
from spane.cli.common import parse_input, spane_errors

if TYPE_CHECKING:
    pass

__all__ = ["register", "replay", "retry"]

_WAIT = typer.Option(help="Wait for the execution to finish and print its output.")
_TIMEOUT = typer.Option(help="With --wait: seconds.")


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
            return await ops.report_started(engine, execution, wait, timeout)

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
            return await ops.report_started(engine, new_id, wait, timeout)

    ops._run(go)


def register(app: typer.Typer) -> None:
    app.command()(retry)
    app.command()(replay)
