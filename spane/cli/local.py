"""The commands that need no server: ``validate``, ``graph`` and ``run``.

Exit codes: 0 success; 1 a definition has problems (``validate``, ``graph``) or the
execution failed, was cancelled or did not finish within ``--timeout`` (``run``); 2 bad
usage (unreadable file, bad ``--input``, import error, unregistered task, invalid
workflow or refused input given to ``run``); 130 interrupted (Ctrl-C).

The compiler and the engine are imported inside the commands, so that merely building
the ``spane`` app (``spane --help``) stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spane.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    FileError,
    exit_with,
    import_modules,
    load_for_run,
    one_line,
    parse_input,
    plan_or_exit,
    problem_lines,
    read_spec,
    spane_errors,
)
from spane.errors import InvalidWorkflowError, SpaneError

__all__ = ["graph", "register", "run", "validate"]


def validate(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Workflow definitions (YAML or JSON)."),
    ],
) -> None:
    """Check definitions and print every problem as FILE: location: message (hint).

    Exit 0 if every file is valid, 1 if any has problems, 2 if a file cannot be read.
    """
    from spane.compiler.compile import compile_plan

    code = EXIT_OK
    for path in files:
        try:
            plan = compile_plan(read_spec(path))
        except FileError as exc:
            typer.echo(f"{path}: {exc}", err=True)
            code = EXIT_USAGE
        except InvalidWorkflowError as exc:
            for line in problem_lines(path, exc):
                typer.echo(line)
            code = max(code, EXIT_FAILED)
        except SpaneError as exc:
            typer.echo(f"{path}: {one_line(str(exc))}")
            code = max(code, EXIT_FAILED)
        else:
            typer.echo(f"{path}: ok ({len(plan.nodes)} nodes)")
    raise typer.Exit(code)


def graph(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A workflow definition.")],
    mermaid: Annotated[
        bool, typer.Option("--mermaid", help="Print a Mermaid flowchart instead of words.")
    ] = False,
) -> None:
    """Show the processed plan: roots, joins, branch and convergence points, groups."""
    from spane.compiler.describe import describe_plan, to_mermaid

    plan = plan_or_exit(file)
    typer.echo(to_mermaid(plan) if mermaid else describe_plan(plan))


def run(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE", help="Workflow files; all are registered, the first one runs."
        ),
    ],
    input_text: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON|@FILE",
            help="Execution input: JSON text, @file.json, or @- for standard input.",
        ),
    ] = None,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            "-m",
            metavar="MODULE",
            help="Module defining @spane.task functions (repeatable; a .py path works too).",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.001, metavar="SECONDS", help="Cancel the execution after this."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress; only the output.")
    ] = False,
) -> None:
    """Run a workflow in this process and print its output as JSON.

    Progress goes to stderr: a live table on a terminal, one line per event otherwise.
    Ctrl-C cancels the execution.
    """
    with spane_errors():
        data = parse_input(input_text)
        import_modules(imports or [])
        specs = load_for_run(files)
        from spane.cli.runner import RunOptions, report, run_files
        from spane.config import load_settings
        from spane.process import run_loop

        try:
            settings = load_settings()
            outcome = run_loop(
                run_files(specs, data, RunOptions(timeout, quiet), settings), settings.event_loop
            )
        except KeyboardInterrupt:
            exit_with(EXIT_INTERRUPTED, "interrupted")
    raise typer.Exit(report(outcome, timeout))


def register(app: typer.Typer) -> None:
    """Add ``validate``, ``graph`` and ``run`` to ``app``."""
    app.command()(validate)
    app.command()(graph)
    app.command()(run)
