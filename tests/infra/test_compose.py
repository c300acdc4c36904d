"""infra/compose.yaml, checked statically (no Docker engine here): the services, their
health checks and start order, that each SPANE command line is accepted by the real
CLI, that settings are real SPANE settings, and that the Python health probe the slim
image relies on (it has no curl or wget) tells a healthy endpoint from a failing one."""

from __future__ import annotations

import http.server
import importlib
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from spane.config import Settings
from tests.infra.support import INFRA, ROOT, parse_spane_args

COMPOSE = INFRA / "compose.yaml"
SERVERS = {"rabbitmq", "redis", "mongodb"}
SPANE_SERVICES = {"orchestrator", "worker-function", "worker-http", "api"}
# Settings other helpers are adding as this is written (the orchestrator/worker health
# and metrics server); everything else must be a field of spane.config.Settings.
PENDING_SETTINGS = {"SPANE_METRICS_PORT"}
PINNED_TAG = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "exec form, so the process gets SIGTERM itself"
    return [str(part) for part in command]


def test_the_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVERS | SPANE_SERVICES
    assert services["orchestrator"]["deploy"]["replicas"] == 2
    assert "management" in services["rabbitmq"]["image"]


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name in SERVERS:
        assert PINNED_TAG.match(services[name]["image"]), f"{name}: {services[name]['image']}"


def test_redis_persists_with_aof(services: dict[str, dict[str, Any]]) -> None:
    command = command_of(services["redis"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, name
        assert service["healthcheck"]["retries"] >= 3, name


def test_start_order_waits_for_health(services: dict[str, dict[str, Any]]) -> None:
    for name in SPANE_SERVICES:
        depends = services[name]["depends_on"]
        assert set(depends) >= SERVERS, f"{name} must wait for every server"
        for target, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {target}"
            assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
    assert "orchestrator" in services["api"]["depends_on"]


def test_spane_command_lines_are_accepted_by_the_cli(services: dict[str, dict[str, Any]]) -> None:
    assert parse_spane_args(command_of(services["orchestrator"]))[0] == "orchestrator"
    command, params = parse_spane_args(command_of(services["worker-function"]))
    assert (command, params["pool"], list(params["imports"])) == (
        "worker",
        ["function"],
        ["examples.shop"],
    )
    command, params = parse_spane_args(command_of(services["worker-http"]))
    assert (command, params["pool"]) == ("worker", ["http"])
    # `spane api` is being added; until then the API runs as `spane dev` (see the file).
    command, params = parse_spane_args(command_of(services["api"]))
    assert command in {"api", "dev"}
    assert params["host"] == "0.0.0.0"
    assert services["api"]["ports"] == [f"127.0.0.1:{params['port']}:{params['port']}"]
    if command == "dev":
        assert list(params["imports"]) == ["examples.shop"]


def test_imported_task_modules_are_mounted(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker-function", "api"):
        service = services[name]
        (mount,) = service["volumes"]
        source, target, mode = mount.split(":")
        assert (INFRA / source).resolve() == ROOT / "examples"
        assert target == f"{service['working_dir']}/examples"
        assert mode == "ro"
    importlib.import_module("examples.shop")  # what --import examples.shop loads


def test_the_image_is_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    for name in SPANE_SERVICES:
        build = services[name]["build"]
        context = (INFRA / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).is_file()


def test_environment_is_real_settings_pointing_at_the_servers(
    services: dict[str, dict[str, Any]],
) -> None:
    known = {f"SPANE_{field.upper()}" for field in Settings.model_fields}
    for name in SPANE_SERVICES:
        env = services[name]["environment"]
        unknown = {k for k in env if k.startswith("SPANE_")} - known - PENDING_SETTINGS
        assert unknown == set(), f"{name}: not SPANE settings: {unknown}"
        Settings(
            **{k[6:].lower(): v for k, v in env.items() if k[6:].lower() in Settings.model_fields}
        )
        for variable, scheme, host in (
            ("SPANE_AMQP_URL", "amqp", "rabbitmq"),
            ("SPANE_REDIS_URL", "redis", "redis"),
            ("SPANE_MONGODB_URL", "mongodb", "mongodb"),
        ):
            url = urlsplit(env[variable])
            assert (url.scheme, url.hostname) == (scheme, host), f"{name}: {variable}"
        amqp = urlsplit(env["SPANE_AMQP_URL"])
        rabbit_env = services["rabbitmq"]["environment"]
        # RabbitMQ's guest user may only log in from localhost.
        assert amqp.username == rabbit_env["RABBITMQ_DEFAULT_USER"] != "guest"
        assert amqp.password == rabbit_env["RABBITMQ_DEFAULT_PASS"]


def test_spane_containers_are_hardened(services: dict[str, dict[str, Any]]) -> None:
    for name in SPANE_SERVICES:
        service = services[name]
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert "/tmp" in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name
        assert service["stop_signal"] == "SIGTERM", name


# ------------------------------------------------------------------- the health probe
class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def probe_code(service: dict[str, Any]) -> tuple[str, int]:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "the slim image has python, not curl or wget"
    code = test[3]
    match = re.search(r"http://127\.0\.0\.1:(\d+)/readyz", code)
    assert match, code
    return code, int(match.group(1))


def test_health_probes_target_each_process_port(services: dict[str, dict[str, Any]]) -> None:
    for name in SPANE_SERVICES:
        _, port = probe_code(services[name])
        if name == "api":
            _, params = parse_spane_args(command_of(services[name]))
            assert port == params["port"]
        else:
            assert port == int(services[name]["environment"]["SPANE_METRICS_PORT"])


@pytest.mark.parametrize("name", sorted(SPANE_SERVICES))
def test_health_probe_passes_on_200_and_fails_on_503_or_nothing(
    services: dict[str, dict[str, Any]],
    health_server: tuple[int, type[_Health]],
    name: str,
) -> None:
    code, port = probe_code(services[name])
    local_port, handler = health_server

    def run(target_port: int) -> int:
        script = code.replace(f"127.0.0.1:{port}", f"127.0.0.1:{target_port}")
        return subprocess.run(
            [sys.executable, "-c", script], capture_output=True, timeout=30
        ).returncode

    assert run(local_port) == 0
    handler.status = 503
    assert run(local_port) != 0
    assert run(closed_port()) != 0


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
