"""The processes of a deployment: ``spane orchestrator`` and ``spane worker``.

Each runs until SIGTERM (or Ctrl-C), logging under ``spane.cli.main``, with OpenTelemetry
traces if the ``OTEL_*`` variables ask for them, and serves ``/metrics``, ``/livez`` and
``/readyz`` on ``SPANE_METRICS_PORT`` (0: none). Both need ``SPANE_AMQP_URL``,
``SPANE_REDIS_URL`` and ``SPANE_MONGODB_URL``; without them they exit with a message
saying so (status 2). ``spane api``, the third process, is in :mod:`spane.cli.inspect`.

The orchestrator, workers and backends are imported inside the commands, so that
``spane --help`` does not load them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

import typer

from spane.cli import ops
from spane.cli.common import EXIT_OK, import_modules, spane_errors
from spane.cli.pools import POOL_HELP, PoolRuntimes, parse_pools

if TYPE_CHECKING:
    from spane.backends import Backends
    from spane.config import Settings
    from spane.observability.health import Checks
    from spane.observability.metrics import Metrics

__all__ = ["orchestrator", "register", "worker"]

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


def orchestrator(
    prefetch: Annotated[
        int | None, typer.Option(help="Micro-batch size / prefetch window (SPANE_PREFETCH).")
    ] = None,
) -> None:
    """Run one orchestrator replica until SIGTERM (any number may run)."""

    async def serve() -> int:
        from spane.observability.health import definitions_check, flag_check
        from spane.orchestrator.service import OrchestratorService

        async with ops._backends("spane orchestrator") as (settings, backends):
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
                await ops._until_stopped()
                log.info("stopping: finishing the batch in flight")
                await service.stop()
        return EXIT_OK

    ops._run(serve)


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

    process = f"spane worker {' '.join(map(str, specs))}"

    async def serve() -> int:
        async with ops._backends(process) as (settings, backends):
            _configure_logging(settings)
            _configure_tracing(f"spane-worker-{'+'.join(s.pool for s in specs)}", settings)
            metrics = _metrics(settings)
            runtimes = PoolRuntimes(specs, backends, settings, concurrency, metrics)
            async with _observed(settings, metrics, backends, {"consumer": runtimes.check()}):
                await runtimes.start()
                await ops._until_stopped()
                await runtimes.stop(grace)
        return EXIT_OK

    ops._run(serve)


def register(app: typer.Typer) -> None:
    """Add ``orchestrator`` and ``worker`` to ``app``, in the order ``spane --help`` lists them."""
    app.command()(orchestrator)
    app.command()(worker)
