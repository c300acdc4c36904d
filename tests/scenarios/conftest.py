"""Fixtures of the scenario suite: one behaviour suite, run on every backend (DESIGN §8).

Every test asks for ``make_engine`` and builds its engine from its own
:class:`~spane.TaskRegistry`::

    async def test_something(make_engine):
        reg = TaskRegistry()

        @reg.task("inc")
        async def inc(data): ...

        engine = await make_engine(reg)

``make_engine`` is parametrized (through ``backend``) over :data:`BACKENDS`; adding a
backend means adding its name there and teaching :func:`build_engine` to build it. The
tests use only the engine's public API and its lifecycle events, so they run unchanged
on any backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from spane import Engine, TaskRegistry
from spane.config import Settings
from spane.core import prefetch
from tests.servers import Namespace, require_amqp, require_mongodb, require_redis

BACKENDS: list[str] = ["memory", "real"]
"""Backends the suite runs on: in-memory (embedded) and real RabbitMQ + Redis + MongoDB."""

EngineFactory = Callable[[TaskRegistry], Awaitable[Engine]]

SCENARIO_SETTINGS = Settings(worker_concurrency=16, prefetch=128)


@dataclass(slots=True)
class _RealServers:
    amqp_url: str
    redis_url: str
    mongodb_url: str
    namespace: Namespace = field(default_factory=Namespace.new)


def build_engine(
    backend: str, registry: TaskRegistry, servers: _RealServers | None = None
) -> Engine:
    """An engine (not yet opened) running ``registry``'s tasks on ``backend``.

    ``real``: RabbitMQ, Redis and MongoDB adapters under one namespace of this test's
    own (queues/exchanges, key prefix, database), removed at teardown.
    """
    if backend == "memory":
        return Engine(registry=registry, settings=SCENARIO_SETTINGS)
    if backend == "real":
        assert servers is not None
        from spane.bus.rabbit import RabbitBus
        from spane.state.mongo import MongoDefinitionStore
        from spane.state.redis import RedisStateStore

        ns = servers.namespace
        return Engine(
            registry=registry,
            settings=SCENARIO_SETTINGS,
            bus=RabbitBus(servers.amqp_url, namespace=ns.name, connection_name=ns.name),
            state=RedisStateStore(servers.redis_url, namespace=ns.name),
            definitions=MongoDefinitionStore(servers.mongodb_url, database=ns.database),
        )
    raise ValueError(f"unknown scenario backend {backend!r}; known: {', '.join(BACKENDS)}")


def _backend_param(name: str) -> object:
    return pytest.param(name, marks=pytest.mark.real) if name == "real" else name


@pytest.fixture(params=[_backend_param(name) for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test (a parametrization over :data:`BACKENDS`)."""
    return str(request.param)


@pytest.fixture
async def make_engine(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[EngineFactory]:
    """``await make_engine(registry)`` -> an opened engine, closed at teardown.

    On ``real`` every workflow counts as large (``prefetch.SMALL_PLAN`` 0), so each
    task result is decided on the partial load the orchestrator guesses, and whatever
    the guess missed is decided again on a full load: the suite checks that path's
    behaviour is the full load's. Starts, commands and timers load every node anyway.
    """
    engines: list[Engine] = []
    servers = None
    if backend == "real":
        servers = _RealServers(require_amqp(), require_redis(), require_mongodb())
        monkeypatch.setattr(prefetch, "SMALL_PLAN", 0)

    async def make(registry: TaskRegistry) -> Engine:
        engine = build_engine(backend, registry, servers)
        await engine.open()
        engines.append(engine)
        return engine

    yield make
    task_types: set[str] = set()
    for engine in reversed(engines):
        task_types.update(engine.pool_names())
        await engine.close()
    if servers is not None:
        await servers.namespace.cleanup(
            amqp_url=servers.amqp_url,
            redis_url=servers.redis_url,
            mongodb_url=servers.mongodb_url,
            task_types=task_types,
        )
