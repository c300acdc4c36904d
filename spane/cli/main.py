"""The ``spane`` command (console script ``spane = "spane.cli.main:main"``).

Commands that need no server::

    spane validate FILE...              check definitions; every problem with its location
    spane graph FILE [--mermaid]        the processed plan in words, or a Mermaid flowchart
    spane run FILE [FILE...] [options]  run the first workflow in this process

Exit codes:

=== ===================================================================================
0   success
1   a definition has problems (``validate``, ``graph``); the execution failed, was
    cancelled or did not finish within ``--timeout`` (``run``)
2   bad usage: unreadable file, bad ``--input``, module import error, unregistered task,
    invalid workflow or refused input given to ``run``, missing or unreachable servers
130 interrupted (Ctrl-C): the execution was cancelled
=== ===================================================================================

Errors raised by SPANE are printed as one line, never as a traceback. The distributed
commands (``orchestrator``, ``worker``, ``api``, ``register``, ``start``, ``status``,
``signal``, ``pause``, ``resume``, ``cancel``) are added to :data:`app` next to these.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.logging import RichHandler

from spane.backends import open_backends
from spane.cli.progress import (
    ExecutionProgress,
    LineLog,
    LiveTable,
    ProgressView,
    Silent,
    format_error,
)
from spane.compiler.compile import compile_plan
from spane.compiler.describe import describe_plan, to_mermaid
from spane.compiler.plan import Plan
from spane.config import Settings, load_settings
from spane.engine import Engine, ExecutionResult
from spane.errors import (
    CommandRejectedError,
    ConfigurationError,
    InvalidInputError,
    InvalidWorkflowError,
    NotFoundError,
    Problem,
    SpaneError,
    TaskNotFoundError,
)
from spane.process import run_loop
from spane.schemas.events import LifecycleEvent
from spane.schemas.loader import load_workflow_file
from spane.schemas.state import ErrorInfo
from spane.schemas.workflow import WorkflowSpec

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "RunOptions",
    "RunOutcome",
    "app",
    "main",
    "run_files",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CANCEL_GRACE = 10.0
"""Seconds ``run`` waits for a cancelled execution to settle before giving up on it."""

app = typer.Typer(
    name="spane",
    help="SPANE: event-driven workflow orchestration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class UsageError(Exception):
    """Bad usage detected by the CLI; its lines are printed and the exit code is 2."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class _FileError(Exception):
    """A definition file that cannot be read at all."""


def _exit(code: int, *lines: str) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def _spane_errors() -> Iterator[None]:
    """Turn errors into messages and exit codes: usage errors and lookups exit 2."""
    try:
        yield
    except UsageError as exc:
        _exit(EXIT_USAGE, *(f"error: {line}" for line in exc.lines))
    except TaskNotFoundError as exc:
        _exit(EXIT_USAGE, f"error: {_one_line(str(exc))} (spane run --import MODULE)")
    except (NotFoundError, InvalidInputError, ConfigurationError) as exc:
        _exit(EXIT_USAGE, f"error: {_one_line(str(exc))}")
    except InvalidWorkflowError as exc:
        name = exc.workflow_id or "workflow"
        _exit(EXIT_USAGE, *(f"error: {name}: {_problem_text(p)}" for p in exc.problems))
    except SpaneError as exc:
        _exit(EXIT_FAILED, f"error: {_one_line(str(exc))}")


def _version(value: bool) -> None:
    if value:
        from spane import __version__

        typer.echo(f"spane {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """SPANE: event-driven workflow orchestration.

    Runs embedded (one process, in memory) unless server URLs are configured.
    """


# ----------------------------------------------------------------- definitions
def _read_spec(path: Path) -> WorkflowSpec:
    """Raises :class:`InvalidWorkflowError` or :class:`_FileError`."""
    try:
        return load_workflow_file(str(path))
    except FileNotFoundError:
        raise _FileError("no such file") from None
    except IsADirectoryError:
        raise _FileError("is a directory, not a workflow file") from None
    except UnicodeDecodeError:
        raise _FileError("is not UTF-8 text") from None
    except OSError as exc:
        raise _FileError(f"cannot read: {exc.strerror or exc}") from None


def _problem_text(problem: Problem, source: str | None = None) -> str:
    """``location: message (hint)`` on one line; a parse error's ``file:L:C`` made readable."""
    location = problem.location
    if source is not None and location.startswith(f"{source}:"):
        line, _, column = location[len(source) + 1 :].partition(":")
        location = f"line {line}, column {column}" if column else f"line {line}"
    elif source is not None and location == source:
        location = "(document)"
    message = problem.message.split('\n  in "', 1)[0]  # drop PyYAML's echo of the text
    text = f"{location}: {_one_line(message)}"
    return f"{text} ({problem.hint})" if problem.hint else text


def _problem_lines(path: Path, error: InvalidWorkflowError) -> list[str]:
    return [f"{path}: {_problem_text(problem, str(path))}" for problem in error.problems]


def _plan_or_exit(path: Path) -> Plan:
    """The compiled plan; problems go to stderr (exit 1), an unreadable file exits 2."""
    try:
        return compile_plan(_read_spec(path))
    except _FileError as exc:
        _exit(EXIT_USAGE, f"{path}: {exc}")
    except InvalidWorkflowError as exc:
        _exit(EXIT_FAILED, *_problem_lines(path, exc))


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Workflow definitions (YAML or JSON)."),
    ],
) -> None:
    """Check definitions and print every problem as FILE: location: message (hint).

    Exit 0 if every file is valid, 1 if any has problems, 2 if a file cannot be read.
    """
    code = EXIT_OK
    for path in files:
        try:
            plan = compile_plan(_read_spec(path))
        except _FileError as exc:
            typer.echo(f"{path}: {exc}", err=True)
            code = EXIT_USAGE
        except InvalidWorkflowError as exc:
            for line in _problem_lines(path, exc):
                typer.echo(line)
            code = max(code, EXIT_FAILED)
        except SpaneError as exc:
            typer.echo(f"{path}: {_one_line(str(exc))}")
            code = max(code, EXIT_FAILED)
        else:
            typer.echo(f"{path}: ok ({len(plan.nodes)} nodes)")
    raise typer.Exit(code)


@app.command()
def graph(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A workflow definition.")],
    mermaid: Annotated[
        bool, typer.Option("--mermaid", help="Print a Mermaid flowchart instead of words.")
    ] = False,
) -> None:
    """Show the processed plan: roots, joins, branch and convergence points, groups."""
    plan = _plan_or_exit(file)
    typer.echo(to_mermaid(plan) if mermaid else describe_plan(plan))


# ------------------------------------------------------------------------- run
def parse_input(text: str | None) -> Any:
    """``--input``: JSON text, ``@file.json``, or ``@-`` for standard input."""
    if text is None:
        return None
    source = "the value"
    if text.startswith("@"):
        name = text[1:]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"--input: cannot read {name!r}: {reason}") from None
        source = "standard input" if name == "-" else repr(name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--input: {source} is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})"
        ) from None


def _module_name(name: str) -> str:
    """A module name, or the module a ``.py`` path stands for (its folder on sys.path)."""
    if not name.endswith(".py"):
        return name
    path = Path(name).resolve()
    if not path.is_file():
        raise UsageError(f"--import: {name!r}: no such file")
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        sys.path.insert(0, str(path.parent))
        return path.stem
    return ".".join(relative.with_suffix("").parts)


def import_modules(names: Sequence[str]) -> None:
    """Import task modules (their ``@spane.task`` functions register themselves), with the
    current directory on ``sys.path`` so that ``--import examples.shop`` works."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in names:
        module = _module_name(name)
        try:
            importlib.import_module(module)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise UsageError(f"--import: cannot import {name!r}: {reason}") from None


def _load_for_run(files: Sequence[Path]) -> list[WorkflowSpec]:
    """Every file loaded and compiled; all problems of all files at once (exit 2)."""
    specs: list[WorkflowSpec] = []
    lines: list[str] = []
    for path in files:
        try:
            spec = _read_spec(path)
            compile_plan(spec)
        except _FileError as exc:
            lines.append(f"{path}: {exc}")
        except InvalidWorkflowError as exc:
            lines.extend(_problem_lines(path, exc))
        else:
            specs.append(spec)
    if lines:
        _exit(EXIT_USAGE, *lines)
    return specs


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How ``spane run`` ended: the result (None if it never settled) and why it stopped."""

    execution_id: str
    result: ExecutionResult | None
    interrupted: bool = False
    timed_out: bool = False


@contextlib.contextmanager
def _on_interrupt(event: asyncio.Event) -> Iterator[None]:
    """The first Ctrl-C / SIGTERM sets ``event`` instead of raising; the next one gets
    the default behaviour again (KeyboardInterrupt: quit at once)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def interrupted() -> None:
        event.set()
        for signum in installed:
            loop.remove_signal_handler(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, interrupted)
        except (NotImplementedError, RuntimeError, ValueError):  # not main thread, Windows
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _cancel(engine: Engine, execution_id: str, reason: str) -> ExecutionResult | None:
    """Cancel and wait for the execution to settle; None if it does not in time."""
    try:
        with contextlib.suppress(CommandRejectedError):  # it finished in the meantime
            await asyncio.wait_for(engine.cancel(execution_id, reason), CANCEL_GRACE)
        return await engine.wait(execution_id, CANCEL_GRACE)
    except TimeoutError:
        return None


async def _wait(
    engine: Engine,
    execution_id: str,
    timeout: float | None,
    view: ProgressView,
    interrupted: asyncio.Event,
) -> RunOutcome:
    waiter = asyncio.ensure_future(engine.wait(execution_id, timeout))
    stopper = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not waiter.done():
        waiter.cancel()
        view.note("interrupted: cancelling the execution (Ctrl-C again to quit at once)")
        result = await _cancel(engine, execution_id, "interrupted (spane run)")
        return RunOutcome(execution_id, result, interrupted=True)
    try:
        return RunOutcome(execution_id, waiter.result())
    except TimeoutError:
        view.note(f"no result within {timeout:g} s: cancelling the execution")
        result = await _cancel(engine, execution_id, f"spane run --timeout {timeout:g}")
        return RunOutcome(execution_id, result, timed_out=True)


def _make_view(progress: ExecutionProgress, quiet: bool) -> ProgressView:
    if quiet:
        return Silent()
    console = Console(stderr=True)
    if sys.stdout.isatty() and console.is_terminal:
        return LiveTable(progress, console)
    return LineLog(progress, sys.stderr)


@contextlib.contextmanager
def _logging(view: ProgressView, settings: Settings, quiet: bool) -> Iterator[None]:
    """SPANE's log records on stderr (through the live console when there is one)."""
    logger = logging.getLogger("spane")
    handler: logging.Handler
    if isinstance(view, LiveTable):
        handler = RichHandler(console=view.console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = settings.log_level.upper() if "log_level" in settings.model_fields_set else None
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level or ("ERROR" if quiet else "WARNING"))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How ``spane run`` waits and shows progress."""

    timeout: float | None = None
    """Seconds to wait for the result before cancelling the execution."""
    quiet: bool = False
    """No progress view; only the output (and errors)."""


async def run_files(
    specs: Sequence[WorkflowSpec],
    data: Any,
    options: RunOptions | None = None,
    settings: Settings | None = None,
) -> RunOutcome:
    """Register every spec, run the first one with live progress, return how it ended.

    Orchestrator and worker pools run in this process, on the embedded backends unless
    server URLs are configured; tasks come from the process-wide registry (where
    ``@spane.task`` registers).
    """
    options = options or RunOptions()
    settings = settings or Settings()
    interrupted = asyncio.Event()
    with _on_interrupt(interrupted):
        backends = await open_backends(settings, allow_embedded=True, process="spane run")
        engine = Engine(
            settings=settings,
            bus=backends.bus,
            state=backends.state,
            definitions=backends.definitions,
        )
        async with engine:
            records = [await engine.register(spec) for spec in specs]
            main = records[0]
            plan = await engine.plans.get(main.workflow_id, main.version)
            progress = ExecutionProgress.for_plan(plan, uuid.uuid4().hex)
            view = _make_view(progress, options.quiet)

            async def on_event(routing_key: str, event: LifecycleEvent) -> None:
                if progress.apply(routing_key, event):
                    view.update(routing_key, event)

            with _logging(view, settings, options.quiet):
                await engine.subscribe("execution.#", on_event)
                await engine.subscribe("node.#", on_event)
                if interrupted.is_set():
                    return RunOutcome(progress.execution_id, None, interrupted=True)
                await engine.start(
                    main.workflow_id,
                    data,
                    version=main.version,
                    execution_id=progress.execution_id,
                )
                with view:
                    return await _wait(
                        engine, progress.execution_id, options.timeout, view, interrupted
                    )


def _error_lines(error: ErrorInfo | None) -> list[str]:
    if error is None:
        return []
    where = ""
    if error.node_id:
        where = f"node {error.node_id}" + (f" (attempt {error.attempt})" if error.attempt else "")
        where += ": "
    lines = [where + _one_line(format_error(error.model_dump()))]
    if error.details is not None:
        details = json.dumps(error.details, ensure_ascii=False, default=str)
        lines.append(f"  details: {details}")
    return lines


def report(outcome: RunOutcome, timeout: float | None = None) -> int:
    """Print the output (stdout, JSON) or the error (stderr); return the exit code."""
    result = outcome.result
    name = f"execution {outcome.execution_id}"
    if outcome.interrupted:
        typer.echo(f"{name} cancelled (interrupted)", err=True)
        return EXIT_INTERRUPTED
    if result is None:
        typer.echo(f"{name} did not settle after being cancelled", err=True)
        return EXIT_FAILED
    if result.succeeded and not outcome.timed_out:
        typer.echo(json.dumps(result.output, indent=2, ensure_ascii=False, default=str))
        return EXIT_OK
    if outcome.timed_out:
        typer.echo(f"{name} did not finish within {timeout:g} s and was cancelled", err=True)
        return EXIT_FAILED
    lines = _error_lines(result.error)
    headline = f"{name} {result.status}" + (f": {lines[0]}" if lines else "")
    for line in (headline, *lines[1:]):
        typer.echo(line, err=True)
    return EXIT_FAILED


@app.command()
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
    with _spane_errors():
        data = parse_input(input_text)
        import_modules(imports or [])
        specs = _load_for_run(files)
        try:
            settings = load_settings()
            outcome = run_loop(
                run_files(specs, data, RunOptions(timeout, quiet), settings), settings.event_loop
            )
        except KeyboardInterrupt:
            _exit(EXIT_INTERRUPTED, "interrupted")
    raise typer.Exit(report(outcome, timeout))


# The distributed commands register themselves on `app` (import for the side effect).
from spane.cli import ops  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SpaneError as exc:  # a SpaneError that escaped a command: still one line
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # python -m spane.cli.main: use the imported module's app
    from spane.cli.main import main as _main

    _main()
