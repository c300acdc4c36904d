"""Fixtures for every test directory.

``redis_cluster_url`` returns the URL (``redis+cluster://…``) of a Redis Cluster that
answers (:func:`tests.redis_cluster.require_redis_cluster`); an unreachable one skips the
test with the reason, except under ``CI=true`` where it fails it.
"""

from __future__ import annotations

import pytest

from tests.redis_cluster import require_redis_cluster


@pytest.fixture(scope="session")
def redis_cluster_url() -> str:
    return require_redis_cluster()
