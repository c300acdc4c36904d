"""The metrics and health endpoint of an orchestrator or worker process (aiohttp).

- ``GET /metrics``: the process's metrics, Prometheus text format;
- ``GET /livez``: 200 while the event loop answers and lags behind by less than
  ``max_lag`` seconds (a loop-lag monitor ticks every ``lag_interval``), else 503;
- ``GET /readyz``: 200 when every readiness check passes, else 503; the JSON body names
  each check with ``null`` or the reason it failed.

Bodies follow the API's health document: ``{"status": "ok" | "unavailable", "checks":
{name: reason | null}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from spane.observability.health import Checks, run_checks
from spane.observability.metrics import CONTENT_TYPE, Metrics

__all__ = ["MAX_LOOP_LAG", "ObservabilityServer"]

log = logging.getLogger("spane.observability")

MAX_LOOP_LAG = 5.0
"""Seconds of event-loop lag after which ``/livez`` fails."""
LAG_INTERVAL = 0.5


class ObservabilityServer:
    """``/metrics``, ``/livez`` and ``/readyz`` on ``host:port`` (port 0: any free port,
    read :attr:`port` after :meth:`start`)."""

    def __init__(
        self,
        *,
        metrics: Metrics | None,
        checks: Checks,
        port: int,
        host: str = "0.0.0.0",  # probes and scrapers come from outside
        max_lag: float = MAX_LOOP_LAG,
        lag_interval: float = LAG_INTERVAL,
        check_timeout: float = 2.0,
    ) -> None:
        self.metrics = metrics
        self.checks = checks
        self.host = host
        self.port = port
        self.max_lag = max_lag
        self.lag_interval = lag_interval
        self.check_timeout = check_timeout
        self.lag = 0.0
        self._last_tick = 0.0
        self._runner: web.AppRunner | None = None
        self._monitor: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        self._last_tick = asyncio.get_running_loop().time()
        self._monitor = asyncio.create_task(self._watch_lag(), name="spane-loop-lag")
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        self._runner = runner  # cleaned up by stop() also when binding fails
        await web.TCPSite(runner, self.host, self.port).start()
        if runner.addresses:  # the bound socket tells the port when 0 was asked for
            self.port = int(runner.addresses[0][1])
        log.info("metrics and health on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ObservabilityServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.lag_interval)
            now = loop.time()
            self.lag = max(now - before - self.lag_interval, 0.0)
            self._last_tick = now
            if self.metrics is not None:
                self.metrics.event_loop_lag.set(self.lag)

    def loop_problem(self) -> str | None:
        """Why the loop is not healthy (None: it is)."""
        since = asyncio.get_running_loop().time() - self._last_tick
        lag = max(self.lag, since - self.lag_interval)
        if lag > self.max_lag:
            return f"event loop lags {lag:.3g} s behind (limit {self.max_lag:g} s)"
        return None

    async def _metrics(self, _: web.Request) -> web.Response:
        if self.metrics is None:
            return web.Response(status=404, text="metrics are off in this process\n")
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _livez(self, _: web.Request) -> web.Response:
        problem = self.loop_problem()
        return _health({"event_loop": problem}, extra={"event_loop_lag_seconds": self.lag})

    async def _readyz(self, _: web.Request) -> web.Response:
        return _health(await run_checks(self.checks, self.check_timeout))


def _health(checks: dict[str, str | None], extra: dict[str, Any] | None = None) -> web.Response:
    ok = all(reason is None for reason in checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks, **(extra or {})}
    return web.json_response(body, status=200 if ok else 503)
