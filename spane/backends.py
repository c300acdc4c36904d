"""Choosing and opening the adapters for a process, from :class:`~spane.config.Settings`.

No server URL configured -> the embedded (in-memory) backends, which only the
all-in-one commands may use. Otherwise all three servers are required; a missing URL
or a missing optional dependency is a :class:`~spane.errors.ConfigurationError` that
says what to set or install.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from spane.bus.base import Bus
from spane.bus.memory import MemoryBus
from spane.config import Settings
from spane.errors import ConfigurationError
from spane.state.base import DefinitionStore, StateStore
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore

_EXTRA_HINT = "install the distributed extras: pip install 'spane[distributed]'"


@dataclass(slots=True)
class Backends:
    bus: Bus
    state: StateStore
    definitions: DefinitionStore
    embedded: bool

    async def close(self) -> None:
        await self.bus.close()
        await self.state.close()
        await self.definitions.close()


def missing_urls(settings: Settings) -> list[str]:
    pairs = [
        ("SPANE_AMQP_URL", settings.amqp_url),
        ("SPANE_REDIS_URL", settings.redis_url),
        ("SPANE_MONGODB_URL", settings.mongodb_url),
    ]
    return [name for name, value in pairs if not value]


def mongo_database(url: str, namespace: str) -> str:
    """The database named in the URL's path, else the namespace."""
    path = urlsplit(url).path.strip("/")
    return path or namespace


async def open_backends(
    settings: Settings, *, allow_embedded: bool, process: str = "spane"
) -> Backends:
    """Connect the bus and stores this process should use."""
    if settings.embedded:
        if not allow_embedded:
            raise ConfigurationError(
                f"{process} runs distributed and needs SPANE_AMQP_URL, SPANE_REDIS_URL and "
                "SPANE_MONGODB_URL (e.g. amqp://guest:guest@localhost:5672/, "
                "redis://localhost:6379/0, mongodb://localhost:27017/spane)"
            )
        bus = MemoryBus(max_value_bytes=settings.max_value_bytes)
        return Backends(bus, MemoryStateStore(), MemoryDefinitionStore(), embedded=True)
    missing = missing_urls(settings)
    if missing:
        raise ConfigurationError(
            f"distributed mode needs all three servers; set {', '.join(missing)}"
        )
    return await _open_distributed(settings, process)


async def _open_distributed(settings: Settings, process: str) -> Backends:
    try:
        from spane.bus.rabbit import RabbitBus
        from spane.state.mongo import MongoDefinitionStore
        from spane.state.redis import RedisStateStore
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(f"{exc}; {_EXTRA_HINT}") from None
    assert settings.amqp_url
    assert settings.redis_url
    assert settings.mongodb_url
    bus = RabbitBus(
        settings.amqp_url,
        namespace=settings.namespace,
        connection_name=process,
        max_value_bytes=settings.max_value_bytes,
        declare_topology=not process.startswith("spane worker"),  # orchestrators declare it
    )
    state = RedisStateStore(
        settings.redis_url, namespace=settings.namespace, retention=settings.retention
    )
    definitions = MongoDefinitionStore(
        settings.mongodb_url, database=mongo_database(settings.mongodb_url, settings.namespace)
    )
    try:
        await bus.connect()
        await state.connect()
        await definitions.connect()
    except Exception as exc:
        await Backends(bus, state, definitions, embedded=False).close()
        raise ConfigurationError(f"cannot connect to the servers: {exc}") from exc
    return Backends(bus, state, definitions, embedded=False)
