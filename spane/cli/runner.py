"""``spane run``'s machinery: run a workflow in this process with live progress.

Imported by the ``run`` command when it runs (it loads the whole engine), never at
``spane`` start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from spane.backends import open_backends
from spane.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, one_line
from spane.cli.progress import (
    ExecutionProgress,
    LineLog,
    LiveTable,
    ProgressView,
    Silent,
    format_error,
)
from spane.config import Settings, load_settings
from spane.engine import Engine, ExecutionResult
from spane.errors import CommandRejectedError
from spane.observability.logs import TEXT_FORMAT, JsonFormatter
from spane.schemas.events import LifecycleEvent
from spane.schemas.state import ErrorInfo
from spane.schemas.workflow import WorkflowSpec

__all__ = ["CANCEL_GRACE", "RunOptions", "RunOutcome", "report", "run_files"]

CANCEL_GRACE = 10.0
"""Seconds ``run`` waits for a cancelled execution to settle before giving up on it."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How ``spane run`` ended: the result (None if it never settled) and why it stopped."""

    execution_id: str
    result: ExecutionResult | None
    interrupted: bool = False
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How ``spane run`` waits and shows progress."""

    timeout: float | None = None
    """Seconds to wait for the result before cancelling the execution."""
    quiet: bool = False
    """No progress view; only the output (and errors)."""


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
        handler.setFormatter(
            JsonFormatter()  # run is interactive: text unless JSON is asked for explicitly
            if settings.log_format == "json"
            else logging.Formatter(TEXT_FORMAT)
        )
    level = settings.log_level.upper() if "log_level" in settings.model_fields_set else None
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level or ("ERROR" if quiet else "WARNING"))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


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
    settings = settings or load_settings()
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
    lines = [where + one_line(format_error(error.model_dump()))]
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
