"""The distributed commands of ``spane``: long-running processes and operations.

``orchestrator`` and ``worker`` are the processes of a deployment; ``register``, ``explain``,
``start``, ``status``, ``signal``, ``pause``, ``resume``, ``cancel`` and ``events`` talk
to it. All need ``SPANE_AMQP_URL``, ``SPANE_REDIS_URL`` and ``SPANE_MONGODB_URL``; without
them they exit with a message saying so (status 2).

The engine, orchestrator, workers and backends (aio_pika, redis, pymongo) are imported
inside the commands that use them, so that ``spane --help`` does not load them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spane.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    import_modules,
    load_for_run,
    parse_input,
    spane_errors,
)
from spane.cli.pools import POOL_HELP, PoolRuntimes, parse_pools, pool_lines

if TYPE_CHECKING:
    from spane.backends import Backends
    from spane.config import Settings
    from spane.core.explain import Explanation
    from spane.engine import Engine, ExecutionSnapshot
    from spane.observability.health import Checks
    from spane.observability.metrics import Metrics
    from spane.schemas.events import LifecycleEvent

__all__ = [
    "cancel",
    "events",
    "explain",
    "orchestrator",
    "pause",
    "register",
    "register_command",
    "resume",
    "signal_command",
    "start",
    "status",
    "trigger",
    "worker",
]

# The name the processes have always logged under (deployments filter on it).
log = logging.getLogger("spane.cli.main")


def _configure_logging(settings: Settings) -> None:
    from spane.observability.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format, sys.stderr)


def _configure_tracing(service: str, settings: Settings) -> None:
    """OpenTelemetry traces, only if the OTEL_* variables ask for them."""
    from spane.observability.tracing_setup import configure

    configure(service, namespace=settings.namespace)


def _metrics(settings: Settings) -> Metrics | None:
    """This process's metrics, routed to the bus hooks too; None when SPANE_METRICS_PORT=0."""
    if not settings.metrics_port:
        return None
    from spane.observability.metrics import Metrics

    metrics = Metrics()
    metrics.install()
    return metrics


@contextlib.asynccontextmanager
async def _observed(
    settings: Settings, metrics: Metrics | None, backends: Backends, checks: Checks
) -> AsyncIterator[None]:
    """``/metrics``, ``/livez``, ``/readyz`` on SPANE_METRICS_PORT while inside (0: none).
    Readiness: the broker connection, a Redis read, and the process's own ``checks``."""
    if not settings.metrics_port:
        yield
        return
    from spane.observability.health import bus_check, state_check
    from spane.observability.server import ObservabilityServer

    every = {"bus": bus_check(backends.bus), "state": state_check(backends.state), **checks}
    server = ObservabilityServer(metrics=metrics, checks=every, port=settings.metrics_port)
    try:
        await server.start()
    except OSError as exc:  # e.g. a second process on one machine: it runs, unobserved
        log.warning(
            "no metrics/health server on port %d (%s); set SPANE_METRICS_PORT per process",
            settings.metrics_port,
            exc,
        )
    try:
        yield
    finally:
        await server.stop()
        if metrics is not None:
            metrics.uninstall()


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


# ------------------------------------------------------------------ processes
def orchestrator(
    prefetch: Annotated[
        int | None, typer.Option(help="Micro-batch size / prefetch window (SPANE_PREFETCH).")
    ] = None,
) -> None:
    """Run one orchestrator replica until SIGTERM (any number may run)."""

    async def serve() -> int:
        from spane.observability.health import definitions_check, flag_check
        from spane.orchestrator.service import OrchestratorService

        async with _backends("spane orchestrator") as (settings, backends):
            _configure_logging(settings)
            _configure_tracing("spane-orchestrator", settings)
            metrics = _metrics(settings)
            service = OrchestratorService(
                backends.bus,
                backends.state,
                backends.definitions,
                options=settings.core_options(),
                prefetch=prefetch or settings.prefetch,
                max_value_bytes=settings.max_value_bytes,
                metrics=metrics,
            )
            checks = {
                "definitions": definitions_check(backends.definitions),
                "consumer": flag_check(lambda: service.consuming, "not consuming the inbox"),
            }
            async with _observed(settings, metrics, backends, checks):
                await service.start()
                log.info("orchestrator running (namespace %s)", settings.namespace)
                await _until_stopped()
                log.info("stopping: finishing the batch in flight")
                await service.stop()
        return EXIT_OK

    _run(serve)


def worker(
    pool: Annotated[list[str], typer.Option(help=POOL_HELP, metavar="TYPE[:POOL]")],
    imports: Annotated[
        list[str] | None,
        typer.Option("--import", help="Module defining tasks (repeatable)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Tasks run at once (SPANE_WORKER_CONCURRENCY).")
    ] = None,
    grace: Annotated[float, typer.Option(help="Seconds to let running tasks finish.")] = 30.0,
) -> None:
    """Run a worker of one or more pools until SIGTERM, then finish running tasks (up to
    --grace). '--pool function:scoring' serves function tasks that workflows route to
    pool 'scoring' (a node's 'pool:', or 'defaults: {pool: scoring}')."""
    specs = parse_pools(pool)
    with spane_errors():
        import_modules(imports or [])

    async def serve() -> int:
        async with _backends(f"spane worker {' '.join(map(str, specs))}") as (settings, backends):
            _configure_logging(settings)
            _configure_tracing(f"spane-worker-{'+'.join(s.pool for s in specs)}", settings)
            metrics = _metrics(settings)
            runtimes = PoolRuntimes(specs, backends, settings, concurrency, metrics)
            async with _observed(settings, metrics, backends, {"consumer": runtimes.check()}):
                await runtimes.start()
                await _until_stopped()
                await runtimes.stop(grace)
        return EXIT_OK

    _run(serve)


# ---------------------------------------------------------------- operations
def register_command(
    files: Annotated[list[Path], typer.Argument(help="Workflow definitions.")],
) -> None:
    """Validate and store definitions (same content keeps its version)."""
    with spane_errors():
        specs = load_for_run(files)

    async def go() -> int:
        async with _client("spane register") as engine:
            for spec in specs:
                record = await engine.register(spec)
                typer.echo(f"{record.workflow_id} v{record.version} ({record.checksum[:12]})")
        return EXIT_OK

    _run(go)


def start(
    workflow: Annotated[str, typer.Argument(help="Workflow id.")],
    input_text: Annotated[
        str | None, typer.Option("--input", help="JSON, @file.json or @- (stdin).")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Pin a version (default latest).")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Starting twice with one key starts once.")
    ] = None,
    priority: Annotated[int, typer.Option(min=0, max=9)] = 0,
    wait: Annotated[bool, typer.Option(help="Wait and print the output.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: seconds.")] = None,
) -> None:
    """Start an execution; prints its id (or, with --wait, its output)."""
    with spane_errors():
        data = parse_input(input_text)

    async def go() -> int:
        async with _client("spane start") as engine:
            execution_id = await engine.start(
                workflow,
                data,
                version=version,
                idempotency_key=idempotency_key,
                priority=priority,
            )
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

    _run(go)


def _status_lines(snapshot: ExecutionSnapshot) -> list[str]:
    from spane.schemas.state import ExecutionStatus

    meta = snapshot.meta
    lines = [
        f"execution {meta.id}",
        f"  workflow  {meta.workflow_id} v{meta.version}",
        f"  status    {meta.status}",
    ]
    if meta.parent is not None:
        lines.append(f"  parent    {meta.parent.execution_id} (node {meta.parent.node_id})")
    if meta.error is not None:
        lines.append(f"  error     {meta.error.type}: {meta.error.message}")
    if meta.status == ExecutionStatus.SUCCEEDED:
        lines.append(f"  output    {json.dumps(meta.output)[:200]}")
    lines.append("  nodes:")
    for node_id, state in sorted(snapshot.nodes.items()):
        extra = f"  children: {', '.join(state.children)}" if state.children else ""
        if state.error is not None:
            extra += f"  {state.error.type}: {state.error.message}"
        lines.append(f"    {node_id:<24} {state.status:<10} attempt {state.attempt}{extra}")
    return lines


def status(
    execution: Annotated[
        str | None, typer.Argument(help="Execution id; none: the worker pools.")
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="text or json.", case_sensitive=False)
    ] = "text",
) -> None:
    """An execution node by node (from Redis, or the archive once it expired there); without
    an id, every pool's waiting tasks and consumers."""
    if output.lower() not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--output")
    as_json = output.lower() == "json"

    async def go() -> int:
        from spane.errors import ExecutionNotFoundError

        async with _client("spane status") as engine:
            if execution is None:
                stats = await engine.pool_stats()
                if as_json:
                    pools = {p: {"waiting": m, "consumers": c} for p, (m, c) in stats.items()}
                    typer.echo(json.dumps(pools, indent=2))
                else:
                    typer.echo("\n".join(pool_lines(stats)))
                return EXIT_OK
            try:
                snapshot = await engine.status(execution)
            except ExecutionNotFoundError:
                archived = await engine.definitions.get_archived(execution)
                if archived is None:
                    raise
                typer.echo(json.dumps(archived, indent=2))
                return EXIT_OK
            if as_json:
                nodes = {k: v.model_dump(mode="json") for k, v in snapshot.nodes.items()}
                typer.echo(json.dumps({**snapshot.meta.model_dump(mode="json"), "nodes": nodes}))
                return EXIT_OK
            for line in _status_lines(snapshot):
                typer.echo(line)
        return EXIT_OK

    _run(go)


def _explain_lines(explanation: Explanation) -> list[str]:
    lines = [
        f"execution {explanation.execution_id}",
        f"  workflow  {explanation.workflow_id} v{explanation.version}",
        f"  status    {explanation.status}",
        f"  {explanation.message}",
    ]
    for node in explanation.nodes:
        lines.append(f"  {node.node_id:<24} {node.status:<8} {node.kind:<14} {node.message}")
        lines.extend(f"  {'':<24} note: {note}" for note in node.notes)
    return lines


def explain(
    execution: Annotated[str, typer.Argument(help="Execution id.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="text or json.", case_sensitive=False)
    ] = "text",
) -> None:
    """Why is it waiting? What every unfinished node of an execution waits on."""
    if output.lower() not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--output")

    async def go() -> int:
        async with _client("spane explain") as engine:
            explanation = await engine.explain(execution)
        if output.lower() == "json":
            typer.echo(json.dumps(explanation.to_dict(), indent=2))
        else:
            for line in _explain_lines(explanation):
                typer.echo(line)
        return EXIT_OK

    _run(go)


def signal_command(
    execution: Annotated[str, typer.Argument(help="Execution id.")],
    name: Annotated[str, typer.Argument(help="Signal name.")],
    data_text: Annotated[
        str | None, typer.Option("--data", help="Payload: JSON, @file.json or @-.")
    ] = None,
) -> None:
    """Send a signal to the nodes of an execution waiting for it."""
    with spane_errors():
        data = parse_input(data_text)

    async def go() -> int:
        async with _client("spane signal") as engine:
            await engine.signal(execution, name, data)
            typer.echo(f"signal {name!r} delivered to {execution}")
        return EXIT_OK

    _run(go)


def _control(verb: str) -> Callable[[str], None]:
    def command(execution: Annotated[str, typer.Argument(help="Execution id.")]) -> None:
        async def go() -> int:
            async with _client(f"spane {verb}") as engine:
                await getattr(engine, verb)(execution)
                typer.echo(f"{verb}: {execution}")
            return EXIT_OK

        _run(go)

    command.__doc__ = f"{verb.capitalize()} an execution."
    return command


pause = _control("pause")
resume = _control("resume")
cancel = _control("cancel")


def trigger(
    routing_key: Annotated[str, typer.Argument(help="Event type, e.g. order.created.")],
    data_text: Annotated[
        str | None, typer.Option("--data", help="Body: JSON (or a CloudEvent), @file, @-.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Re-publishing with the same key starts nothing new.")
    ] = None,
) -> None:
    """Publish a trigger event to spane.triggers, as any AMQP producer could."""
    with spane_errors():
        data = parse_input(data_text)

    async def go() -> int:
        async with _client("spane trigger") as engine:
            await engine.publish_trigger(routing_key, data, idempotency_key=idempotency_key)
            typer.echo(f"published {routing_key}")
        return EXIT_OK

    _run(go)


def events(
    pattern: Annotated[str, typer.Argument(help="Topic pattern, e.g. 'execution.*.failed'.")] = "#",
    until_done: Annotated[
        str | None, typer.Option(help="Stop when this execution finishes.")
    ] = None,
) -> None:
    """Print lifecycle events (CloudEvents, one JSON per line) as they happen."""

    async def go() -> int:
        import asyncio

        from spane.schemas.state import TERMINAL_EXECUTION_STATUSES

        done = asyncio.Event()

        async def on_event(routing_key: str, event: LifecycleEvent) -> None:
            typer.echo(json.dumps({"routing_key": routing_key, **event.model_dump()}))
            finished = event.data.get("status") in TERMINAL_EXECUTION_STATUSES
            mine = event.subject == until_done and routing_key.startswith("execution.")
            if until_done and mine and finished:
                done.set()

        async with _client("spane events") as engine:
            await engine.subscribe(pattern, on_event)
            waiter = asyncio.ensure_future(done.wait())
            stopper = asyncio.ensure_future(_until_stopped())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
        return EXIT_OK

    _run(go)


def register(app: typer.Typer) -> None:
    """Add the distributed commands to ``app``, in the order ``spane --help`` lists them."""
    app.command()(orchestrator)
    app.command()(worker)
    app.command("register")(register_command)
    app.command()(start)
    app.command()(status)
    app.command()(explain)
    app.command("signal")(signal_command)
    for verb, command in (("pause", pause), ("resume", resume), ("cancel", cancel)):
        app.command(verb)(command)
    app.command()(trigger)
    app.command()(events)
