"""Property-based: requests generated from /openapi.json never get a 5xx.

The app runs under uvicorn in a thread (its own event loop, as in production) and
schemathesis calls it over HTTP. Bounded to a few examples per operation so that the
whole run stays within seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok

from spane import Engine
from spane.api import ApiConfig, create_app
from spane.config import Settings

from .conftest import CHAIN, SIGNAL, _registry

EXAMPLES_PER_OPERATION = 25


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    gate = threading.Event()
    engine = Engine(registry=_registry(gate), settings=Settings(gc_tuning=False))

    async def seed(engine: Engine) -> None:
        await engine.register(CHAIN)
        await engine.register(SIGNAL)

    app = create_app(engine, config=ApiConfig(max_body_bytes=64 * 1024), on_startup=[seed])
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-schemathesis", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    gate.set()
    server.should_exit = True
    thread.join(10)


def test_no_server_errors(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    assert len(operations) >= 10
    strategy = st.one_of([operation.as_strategy() for operation in operations])
    failures: list[str] = []

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=base_url)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    check()
    assert failures == []
