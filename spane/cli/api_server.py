"""The parts of ``spane api`` that need the engine and the API: a client engine on the
servers (no orchestrator, no worker pools in this process) and the app over it.
Imported only when ``spane api`` runs (``spane --help`` stays fast)."""

from __future__ import annotations

from fastapi import FastAPI

from spane.backends import missing_urls, mongo_database
from spane.config import Settings
from spane.engine import Engine
from spane.errors import ConfigurationError

PROCESS = "spane api"


def build_client_engine(settings: Settings) -> Engine:
    """An engine that talks to a deployment over the bus and reads state and definitions
    directly: commands go to the orchestrators, tasks to the worker pools elsewhere. Not
    open yet (it opens on the server's event loop). All three server URLs are needed."""
    missing = missing_urls(settings)
    if missing:
        raise ConfigurationError(
            f"{PROCESS} is a process of a distributed deployment; set {', '.join(missing)} "
            "(e.g. amqp://guest:guest@localhost:5672/, redis://localhost:6379/0, "
            "mongodb://localhost:27017/spane); for one process with everything in it, "
            "use spane dev"
        )
    try:
        from spane.bus.rabbit import RabbitBus
        from spane.state.mongo import MongoDefinitionStore
        from spane.state.redis import RedisStateStore
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(f"{exc}; pip install 'spane[distributed]'") from None
    assert settings.amqp_url
    assert settings.redis_url
    assert settings.mongodb_url
    return Engine(
        settings=settings,
        bus=RabbitBus(
            settings.amqp_url,
            namespace=settings.namespace,
            connection_name=PROCESS,
            max_value_bytes=settings.max_value_bytes,
        ),
        state=RedisStateStore(
            settings.redis_url, namespace=settings.namespace, retention=settings.retention
        ),
        definitions=MongoDefinitionStore(
            settings.mongodb_url, database=mongo_database(settings.mongodb_url, settings.namespace)
        ),
        pools=[],
        run_orchestrator=False,
    )


def make_app(settings: Settings) -> FastAPI:
    """The API app over a client engine (opened and closed by the app's lifespan)."""
    from spane.api import create_app

    return create_app(build_client_engine(settings))
