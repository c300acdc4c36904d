"""Real servers for tests: where they are, whether they answer, how to clean up after.

``require_*`` return the URL of a server that answers (``SPANE_TEST_<SERVER>_URL``; else,
with ``SPANE_TEST_CONTAINERS=1`` and a Docker engine, a testcontainers container; else
localhost: :mod:`bench.containers`); an unreachable one skips the test with the reason,
or fails it under ``CI=true`` (DESIGN §8). ``Namespace`` gives one test its own RabbitMQ names,
Redis keys and MongoDB database, and removes them afterwards.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from bench.containers import docker_reachable, resolve_url, start_container
from bench.deploy import (
    delete_rabbit_namespace,
    delete_redis_namespace,
    drop_mongo_database,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
MONGODB_URL = "mongodb://127.0.0.1:27018/"  # infra/scripts/ensure-services.sh (SecantusDB)


def _require(name: str, url: str, probe: Callable[[str], None]) -> str:
    try:
        probe(url)
    except Exception as exc:
        reason = f"{name} at {url} is unreachable ({type(exc).__name__}: {exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: servers must be up)", pytrace=False)
        pytest.skip(reason)
    return url


def _tcp_probe(url: str) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2.0):
        pass


def _mongodb_probe(url: str) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


def _redis_probe(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        client.ping()
    finally:
        client.close()


@functools.cache
def _probed(name: str, url: str) -> None:
    {"Redis": _redis_probe, "RabbitMQ": _tcp_probe, "MongoDB": _mongodb_probe}[name](url)


def _cached_probe(name: str) -> Callable[[str], None]:
    return lambda url: _probed(name, url)


def _url(server: str, variable: str, default: str) -> str:
    """The variable's URL, a container's (``SPANE_TEST_CONTAINERS=1`` and Docker), or the
    local default: :func:`bench.containers.resolve_url`."""
    env = os.environ
    return resolve_url(
        server, variable, default, env, docker=docker_reachable, start=start_container
    )


def require_redis() -> str:
    url = _url("Redis", "SPANE_TEST_REDIS_URL", REDIS_URL)
    return _require("Redis", url, _cached_probe("Redis"))


def require_amqp() -> str:
    url = _url("RabbitMQ", "SPANE_TEST_AMQP_URL", AMQP_URL)
    return _require("RabbitMQ", url, _cached_probe("RabbitMQ"))


def require_mongodb() -> str:
    url = _url("MongoDB", "SPANE_TEST_MONGODB_URL", MONGODB_URL)
    return _require("MongoDB", url, _cached_probe("MongoDB"))


@dataclass(frozen=True, slots=True)
class Namespace:
    """One test's own names on every server."""

    name: str

    @classmethod
    def new(cls, prefix: str = "spanetest") -> Namespace:
        return cls(f"{prefix}-{uuid.uuid4().hex[:8]}")

    @property
    def database(self) -> str:
        return self.name.replace("-", "_")

    async def cleanup(
        self, *, amqp_url: str, redis_url: str, mongodb_url: str, task_types: Iterable[str]
    ) -> None:
        await delete_rabbit_namespace(amqp_url, self.name, task_types)
        await delete_redis_namespace(redis_url, self.name)
        await drop_mongo_database(mongodb_url, self.database)
