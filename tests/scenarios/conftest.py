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

import pytest

from spane import Engine, TaskRegistry

BACKENDS: list[str] = ["memory"]
"""Backends the suite runs on; ``"real"`` (RabbitMQ + Redis + MongoDB) comes later."""

EngineFactory = Callable[[TaskRegistry], Awaitable[Engine]]


def build_engine(backend: str, registry: TaskRegistry) -> Engine:
    """An engine (not yet opened) running ``registry``'s tasks on ``backend``.

    The one place that knows how each backend is wired; extend it for ``"real"``
    (bus/state/definitions adapters pointed at per-test vhost/db/key prefixes).
    """
    if backend == "memory":
        return Engine(registry=registry)
    raise ValueError(f"unknown scenario backend {backend!r}; known: {', '.join(BACKENDS)}")


def _backend_param(name: str) -> object:
    return pytest.param(name, marks=pytest.mark.real) if name == "real" else name


@pytest.fixture(params=[_backend_param(name) for name in BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test (a parametrization over :data:`BACKENDS`)."""
    return str(request.param)


@pytest.fixture
async def make_engine(backend: str) -> AsyncIterator[EngineFactory]:
    """``await make_engine(registry)`` -> an opened engine, closed at teardown."""
    engines: list[Engine] = []

    async def make(registry: TaskRegistry) -> Engine:
        engine = build_engine(backend, registry)
        await engine.open()
        engines.append(engine)
        return engine

    yield make
    for engine in reversed(engines):
        await engine.close()
