"""The FastAPI application: ``create_app(engine)``.

Routes are versioned under ``/v1``; OpenAPI 3.1 is served at ``/openapi.json`` and
its documentation at ``/docs``. Every error is a problem-details document
(:mod:`spane.api.problems`). The app's lifespan opens the engine (unless told it is
managed elsewhere), subscribes the event hub, runs the ``on_startup`` hooks, and
undoes all of it on shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from fastapi import FastAPI, Response

import spane
from spane.api.auth import ApiKeyMiddleware, ApiKeys, load_api_keys
from spane.api.bodies import BodyLimitMiddleware
from spane.api.context import BODY_SLACK_BYTES, ApiConfig, ApiContext
from spane.api.hub import EventHub
from spane.api.problems import install_handlers
from spane.api.routes import (
    commands,
    dashboard,
    dead_letters,
    executions,
    explain,
    graph,
    health,
    hooks,
    pools,
    recovery,
    stream,
    workflows,
)
from spane.engine import Engine
from spane.observability.metrics import CONTENT_TYPE, Metrics
from spane.observability.tracing_setup import TraceContextMiddleware, configure

StartupHook = Callable[[Engine], Awaitable[None]]


def create_app(
    engine: Engine,
    *,
    config: ApiConfig | None = None,
    manage_engine: bool = True,
    on_startup: Sequence[StartupHook] = (),
    metrics: Metrics | None = None,
) -> FastAPI:
    """The HTTP face of ``engine``.

    ``manage_engine``: open the engine when the app starts and close it when it stops
    (set False when the caller opens and closes it). ``on_startup`` hooks run once the
    engine is open (e.g. registering definitions). ``GET /metrics`` serves ``metrics``
    (by default this app's own registry: the process's CPU, memory, file descriptors).
    """
    config = config or ApiConfig()
    hub = EventHub(
        per_execution=config.history_per_execution,
        executions=config.history_executions,
        queue_size=config.websocket_queue,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_engine:
            await engine.open()
        try:
            await hub.start(engine)
            for hook in on_startup:
                await hook(engine)
            yield
        finally:
            await hub.stop(engine)
            if manage_engine:
                await engine.close()

    app = FastAPI(
        title="SPANE",
        version=spane.__version__,
        summary="Workflows: definitions, executions, control commands, lifecycle events",
        lifespan=lifespan,
        separate_input_output_schemas=False,
    )
    app.state.spane = ApiContext(engine=engine, hub=hub, config=config)
    max_body = config.max_body_bytes
    if max_body is None:
        max_body = engine.settings.max_value_bytes + BODY_SLACK_BYTES
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body)
    if configure("spane-api", namespace=engine.settings.namespace):
        app.add_middleware(TraceContextMiddleware)  # a traceparent header: the caller's trace
    keys = config.api_keys or _settings_keys(engine)
    if keys:  # added last: runs first, before a body is read
        app.add_middleware(ApiKeyMiddleware, keys=keys)
    install_handlers(app)
    routers = (workflows, graph, executions, explain, commands, dead_letters, stream, hooks)
    for module in (*routers, pools, recovery, health):
        app.include_router(module.router)
    scraped = metrics or Metrics()

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(scraped.exposition(), media_type=CONTENT_TYPE)

    app.include_router(dashboard.router)  # last: its SPA fallback matches any other GET
    return app


def _settings_keys(engine: Engine) -> ApiKeys | None:
    settings = engine.settings
    secret = settings.api_keys.get_secret_value() if settings.api_keys else None
    return load_api_keys(secret, settings.api_keys_file)
