"""Real servers for the integration tests.

Each ``<server>_url`` fixture reads ``SPANE_TEST_<SERVER>_URL`` (localhost by default)
and checks that the server answers. An unreachable server skips the test with the
reason, except under ``CI=true`` where it fails it (DESIGN §8).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

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


def _tcp_probe(default_port: int) -> Callable[[str], None]:
    def probe(url: str) -> None:
        parts = urlsplit(url)
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2.0
        ):
            pass

    return probe


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


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("SPANE_TEST_REDIS_URL", REDIS_URL)
    return _require("Redis", url, _redis_probe)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    url = os.environ.get("SPANE_TEST_AMQP_URL", AMQP_URL)
    return _require("RabbitMQ", url, _tcp_probe(5672))


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    url = os.environ.get("SPANE_TEST_MONGODB_URL", MONGODB_URL)
    return _require("MongoDB", url, _mongodb_probe)
