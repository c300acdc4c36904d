"""The Redis client of a ``SPANE_REDIS_URL``: one server, or a Redis Cluster.

``redis://`` and ``rediss://`` (TLS) name one server. ``redis+cluster://HOST:PORT/`` and
``rediss+cluster://`` name any node of a cluster: the client discovers the others, sends
each command to the node that owns its key's slot and follows resharding (``MOVED``).
A cluster has one database, so such a URL names none other than 0.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes that select cluster mode, and the scheme redis-py knows them by."""

AnyRedis = Redis | RedisCluster
"""The client of either mode: both speak the commands the state store uses."""


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def client_for(url: str) -> AnyRedis:
    """A client for ``url`` (connecting lazily): a :class:`RedisCluster` for a cluster URL."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme)
    if scheme is None:
        return Redis.from_url(url)
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(
            f"SPANE_REDIS_URL {parts.scheme}://{parts.hostname}:{parts.port}{parts.path}: a "
            "Redis Cluster has only database 0; drop the database from the URL"
        )
    if not parts.hostname:
        raise ValueError(f"SPANE_REDIS_URL {url!r}: a cluster URL needs a host (any node)")
    plain = urlunsplit((scheme, parts.netloc, "", parts.query, parts.fragment))
    return RedisCluster.from_url(plain)
