"""Where the tests' and the benchmark's servers come from: a URL given in the
environment, a throwaway container, or the servers on this machine.

For each server (RabbitMQ, Redis, MongoDB), :func:`server_source` decides:

1. its URL variable is set (``SPANE_TEST_AMQP_URL``, ...): that URL;
2. ``SPANE_TEST_CONTAINERS=1`` and a Docker engine answers: a container started with
   `testcontainers <https://testcontainers-python.readthedocs.io>`_ (the ``dev`` extra),
   once per process, removed when the process exits;
3. otherwise the local default (what ``infra/scripts/ensure-services.sh`` runs).

:func:`server_source` and :func:`resolve_url` are pure given their arguments (the
environment, a Docker probe, a container starter) and unit-tested; the container path
itself needs a Docker engine.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import socket
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "CONTAINERS_VARIABLE",
    "IMAGES",
    "Source",
    "docker_reachable",
    "resolve_url",
    "server_source",
    "start_container",
]

Source = Literal["env", "container", "local"]
CONTAINERS_VARIABLE = "SPANE_TEST_CONTAINERS"
IMAGES = {"RabbitMQ": "rabbitmq:3.13", "Redis": "redis:7.2", "MongoDB": "mongo:7.0"}
"""Images of the containers (RabbitMQ 3.10+ for quorum queues with delivery limits)."""
_TRUE = frozenset({"1", "true", "yes", "on"})


def server_source(url: str | None, containers: str | None, docker: Callable[[], bool]) -> Source:
    """``url``: the server's URL variable; ``containers``: ``SPANE_TEST_CONTAINERS``;
    ``docker``: whether a Docker engine answers (asked only when containers are wanted)."""
    if url:
        return "env"
    if (containers or "").strip().lower() in _TRUE and docker():
        return "container"
    return "local"


def resolve_url(
    server: str,
    variable: str,
    default: str,
    env: Mapping[str, str],
    *,
    docker: Callable[[], bool],
    start: Callable[[str], str],
) -> str:
    """The URL of ``server`` (``RabbitMQ``, ``Redis``, ``MongoDB``): ``env[variable]``,
    ``start(server)`` (a container's URL), or ``default``."""
    source = server_source(env.get(variable), env.get(CONTAINERS_VARIABLE), docker)
    if source == "env":
        return env[variable]
    if source == "container":
        return start(server)
    return default


@functools.cache
def docker_reachable() -> bool:
    """Whether a Docker engine answers ``GET /_ping`` at ``DOCKER_HOST`` (``unix://`` or
    ``tcp://``) or the default socket. Asked over a plain socket: the Docker SDK leaves
    a socket open when the engine is missing."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    parts = urlsplit(host)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5.0)
            with sock:
                sock.connect(parts.path)
                return _pinged(sock)
        if parts.scheme == "tcp" and parts.hostname:
            with socket.create_connection((parts.hostname, parts.port or 2375), 5.0) as sock:
                return _pinged(sock)
    except OSError:
        return False
    return False


def _pinged(sock: socket.socket) -> bool:
    sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
    return sock.recv(64).split(b" ", 2)[1:2] == [b"200"]


@functools.cache
def start_container(server: str) -> str:
    """Start ``server``'s container (once per process; stopped at exit); its URL in the
    form the local default has (no credentials for Redis and MongoDB)."""
    with warnings.catch_warnings():  # testcontainers' own deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        container, url = _STARTERS[server]()
    atexit.register(_stop, container)
    return url


def _stop(container: Any) -> None:
    with contextlib.suppress(Exception):  # the engine may already be gone at exit
        container.stop()


def _rabbitmq() -> tuple[Any, str]:
    from testcontainers.community.rabbitmq import RabbitMqContainer

    container = RabbitMqContainer(IMAGES["RabbitMQ"], username="guest", password="guest")
    container.start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
    return container, f"amqp://guest:guest@{host}:{port}/"


def _redis() -> tuple[Any, str]:
    from testcontainers.community.redis import RedisContainer

    container = RedisContainer(IMAGES["Redis"])
    container.start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    return container, f"redis://{host}:{port}/0"


def _mongodb() -> tuple[Any, str]:
    from testcontainers.community.mongodb import MongoDbContainer

    class _Unauthenticated(MongoDbContainer):
        """Without a root user: URLs get a database appended (``.../<db>``), which with
        credentials would make that database the authentication source."""

        def _configure(self) -> None:
            return None

    container = _Unauthenticated(IMAGES["MongoDB"])
    container.start()
    host, port = container.get_container_host_ip(), container.get_exposed_port(27017)
    return container, f"mongodb://{host}:{port}/"


_STARTERS: dict[str, Callable[[], tuple[Any, str]]] = {
    "RabbitMQ": _rabbitmq,
    "Redis": _redis,
    "MongoDB": _mongodb,
}
