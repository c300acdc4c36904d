"""The ``spane`` command (console script ``spane = "spane.cli.main:main"``).

Commands that need no server (:mod:`spane.cli.local`)::

    spane validate FILE...              check definitions; every problem with its location
    spane graph FILE [--mermaid]        the processed plan in words, or a Mermaid flowchart
    spane run FILE [FILE...] [options]  run the first workflow in this process

The distributed commands, one module per group (what they share is in
:mod:`spane.cli.ops`): the processes ``orchestrator``, ``worker``
(:mod:`spane.cli.processes`); ``register``, ``start``, ``status``, ``explain``,
``signal``, ``pause``, ``resume``, ``cancel`` (:mod:`spane.cli.executions`); ``trigger``,
``events`` (:mod:`spane.cli.events`); looking in and serving the API
(:mod:`spane.cli.inspect`): ``api``, ``list``, ``history``, ``dead-letters``; ``retry``,
``replay`` (:mod:`spane.cli.recovery`); ``dev`` (:mod:`spane.cli.dev`).

Exit codes:

=== ===================================================================================
0   success
1   a definition has problems (``validate``, ``graph``); the execution failed, was
    cancelled or did not finish within ``--timeout`` (``run``)
2   bad usage: unreadable file, bad ``--input``, module import error, unregistered task,
    invalid workflow or refused input given to ``run``, missing or unreachable servers
130 interrupted (Ctrl-C): the execution was cancelled
=== ===================================================================================

Errors raised by SPANE are printed as one line, never as a traceback. Building the app
imports no part of the engine: each command imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from spane.cli import dev, events, executions, inspect, local, processes, recovery
from spane.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, one_line
from spane.errors import SpaneError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "app", "build_app", "main"]


def _version(value: bool) -> None:
    if value:
        from spane import __version__

        typer.echo(f"spane {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """SPANE: event-driven workflow orchestration.

    Runs embedded (one process, in memory) unless server URLs are configured.
    """


def build_app() -> typer.Typer:
    """The ``spane`` Typer app with every command."""
    app = typer.Typer(
        name="spane",
        help="SPANE: event-driven workflow orchestration.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    local.register(app)
    processes.register(app)
    executions.register(app)
    events.register(app)
    inspect.register(app)
    recovery.register(app)
    dev.register(app)
    return app


app = build_app()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SpaneError as exc:  # a SpaneError that escaped a command: still one line
        typer.echo(f"error: {one_line(str(exc))}", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # python -m spane.cli.main
    main()
