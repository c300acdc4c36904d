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

from fastapi import FastAPI

import spane
from spane.api.bodies import BodyLimitMiddleware
from spane.api.context import BODY_SLACK_BYTES, ApiConfig, ApiContext
from spane.api.hub import EventHub
from spane.api.problems import install_handlers
from spane.api.routes import commands, executions, health, stream, workflows
from spane.engine import Engine

StartupHook = Callable[[Engine], Awaitable[None]]


def create_app(
    engine: Engine,
    *,
    config: ApiConfig | None = None,
    manage_engine: bool = True,
    on_startup: Sequence[StartupHook] = (),
) -> FastAPI:
    """The HTTP face of ``engine``.

    ``manage_engine``: open the engine when the app starts and close it when it stops
    (set False when the caller opens and closes it). ``on_startup`` hooks run once the
    engine is open (e.g. registering definitions).
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
    install_handlers(app)
    for module in (workflows, executions, commands, stream, health):
        app.include_router(module.router)
    return app
