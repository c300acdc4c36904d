"""Real servers for the integration tests (see :mod:`tests.servers`).

Each ``<server>_url`` fixture returns the URL of a server that answers; an unreachable
one skips the test with the reason, except under ``CI=true`` where it fails it.
"""

from __future__ import annotations

import pytest

from tests.servers import require_amqp, require_mongodb, require_redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return require_amqp()


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    return require_mongodb()
