"""What the distributed commands share: a client engine of a deployment, the backends of a
process, running a command's coroutine on SPANE's event loop, waiting for SIGTERM.

The commands themselves are grouped by concern: :mod:`spane.cli.processes`
(``orchestrator``, ``worker``), :mod:`spane.cli.executions` (``register``, ``start``,
``status``, ``explain``, ``signal``, ``pause``, ``resume``, ``cancel``),
:mod:`spane.cli.events` (``trigger``, ``events``), :mod:`spane.cli.inspect` and
:mod:`spane.cli.recovery`. They call these helpers as ``ops._client(...)``, so a test can
replace the client with an embedded engine (``monkeypatch.setattr(ops, "_client", ...)``).

The engine and backends (aio_pika, redis, pymongo) are imported inside the helpers, so
that ``spane --help`` does not load them.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import typer

from spane.cli.common import EXIT_FAILED, EXIT_OK, spane_errors

if TYPE_CHECKING:
    from spane.backends import Backends
    from spane.config import Settings
    from spane.engine import Engine

__all__: list[str] = []


async def _until_stopped() -> None:
    """Wait for SIGTERM or SIGINT."""
    import asyncio  # here, not at the top: it is not needed to build the app

    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


@contextlib.asynccontextmanager
async def _backends(process: str) -> AsyncIterator[tuple[Settings, Backends]]:
    from spane.backends import open_backends
    from spane.config import load_settings

    settings = load_settings()
    backends = await open_backends(settings, allow_embedded=False, process=process)
    try:
        yield settings, backends
    finally:
        await backends.close()


@contextlib.asynccontextmanager
async def _client(process: str) -> AsyncIterator[Engine]:
    """An Engine that only talks to a deployment: no orchestrator, no pools here."""
    from spane.engine import Engine

    async with _backends(process) as (settings, backends):
        engine = Engine(
            settings=settings,
            bus=backends.bus,
            state=backends.state,
            definitions=backends.definitions,
            pools=[],
            run_orchestrator=False,
        )
        await engine.open()
        try:
            yield engine
        finally:
            await engine.close()


def _run(coro: Callable[[], Awaitable[int]]) -> None:
    with spane_errors():
        from spane.config import load_settings
        from spane.process import run_loop, tune_gc

        settings = load_settings()
        if settings.gc_tuning:
            tune_gc()
        code = run_loop(_main(coro), settings.event_loop)
    raise typer.Exit(code)


async def _main(coro: Callable[[], Awaitable[int]]) -> int:
    return await coro()


async def report_started(
    engine: Engine, execution_id: str, wait: bool, timeout: float | None
) -> int:
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
