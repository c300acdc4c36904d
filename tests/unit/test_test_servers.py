"""Where test servers come from (:mod:`bench.containers`): a URL variable wins, then a
container when ``SPANE_TEST_CONTAINERS=1`` and Docker answers, else the local server.
The container path itself needs a Docker engine and is not exercised here."""

from __future__ import annotations

import socket
import threading

import pytest

from bench.containers import IMAGES, docker_reachable, resolve_url, server_source

LOCAL = "redis://127.0.0.1:6379/0"
VARIABLE = "SPANE_TEST_REDIS_URL"


class Docker:
    """A Docker probe that records whether it was asked."""

    def __init__(self, answers: bool) -> None:
        self.answers = answers
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.answers


class Starter:
    def __init__(self) -> None:
        self.started: list[str] = []

    def __call__(self, server: str) -> str:
        self.started.append(server)
        return f"redis://container-{server}:32768/0"


@pytest.mark.parametrize(
    ("url", "flag", "docker", "expected"),
    [
        ("redis://elsewhere:6379/0", "1", True, "env"),  # an explicit URL always wins
        ("redis://elsewhere:6379/0", None, False, "env"),
        (None, "1", True, "container"),
        (None, "true", True, "container"),
        (None, " YES ", True, "container"),
        (None, "1", False, "local"),  # no Docker engine: the local servers
        (None, None, True, "local"),  # not asked for
        (None, "0", True, "local"),
        (None, "", True, "local"),
        ("", "1", True, "container"),  # an empty variable is unset
    ],
)
def test_server_source(url: str | None, flag: str | None, docker: bool, expected: str) -> None:
    assert server_source(url, flag, Docker(docker)) == expected


def test_docker_is_asked_only_when_containers_are_wanted() -> None:
    probe = Docker(True)
    server_source(None, None, probe)
    server_source("redis://x:1/0", "1", probe)
    assert probe.asked == 0
    server_source(None, "1", probe)
    assert probe.asked == 1


def test_resolve_url_starts_a_container_only_on_the_container_path() -> None:
    start = Starter()
    env = {"SPANE_TEST_CONTAINERS": "1"}
    url = resolve_url("Redis", VARIABLE, LOCAL, env, docker=Docker(True), start=start)
    assert (url, start.started) == ("redis://container-Redis:32768/0", ["Redis"])

    start = Starter()
    assert resolve_url("Redis", VARIABLE, LOCAL, env, docker=Docker(False), start=start) == LOCAL
    given = {**env, VARIABLE: "redis://given:1/0"}
    assert resolve_url("Redis", VARIABLE, LOCAL, given, docker=Docker(True), start=start) == (
        "redis://given:1/0"
    )
    assert resolve_url("Redis", VARIABLE, LOCAL, {}, docker=Docker(True), start=start) == LOCAL
    assert start.started == []


def test_every_server_has_an_image() -> None:
    assert set(IMAGES) == {"RabbitMQ", "Redis", "MongoDB"}


def _answering(reply: bytes) -> tuple[str, threading.Thread, socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"tcp://127.0.0.1:{port}", thread, server


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(b"HTTP/1.1 200 OK\r\n\r\nOK", True), (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", False)],
)
def test_the_docker_probe_pings_docker_host(
    monkeypatch: pytest.MonkeyPatch, reply: bytes, expected: bool
) -> None:
    host, thread, server = _answering(reply)
    with server:
        monkeypatch.setenv("DOCKER_HOST", host)
        assert docker_reachable.__wrapped__() is expected
        thread.join(5)


def test_the_docker_probe_says_no_when_nothing_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    assert docker_reachable.__wrapped__() is False
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert docker_reachable.__wrapped__() is False
