"""End-to-end fixtures: a real ``spane dev`` server (subprocess, free port) with the
workflows of tests/e2e/workflows, and a headless Chromium driven by Playwright.

Debian's chromium is used (``apt-get install chromium``), never a downloaded browser.
Without chromium (or the playwright package) the tests are skipped, unless
``CI=true``: there they must run, so they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SPANE_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = (
    ROOT / "docs" / "img"
    if os.environ.get("SPANE_E2E_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "spane-e2e-screenshots"
)
"""The README's screenshots are refreshed with SPANE_E2E_SCREENSHOTS=1; other runs
write them to a temporary folder so the tree stays clean."""


def _missing() -> str | None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


MISSING = _missing()
IN_CI = os.environ.get("CI") == "true"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)
            if MISSING and not IN_CI:
                item.add_marker(pytest.mark.skip(reason=f"e2e: {MISSING}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"spane dev exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/workflows", timeout=1) as response:
                if response.status == 200 and b"e2e-fanout" in response.read():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("spane dev did not become ready")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPANE_AMQP", "SPANE_REDIS", "SPANE_MONGODB", "SPANE_API_KEYS"))
    }
    command = [
        sys.executable,
        "-m",
        "spane.cli.main",
        "dev",
        "--import",
        "tests.e2e.tasks",
        "--workflows",
        "tests/e2e/workflows",
        "--port",
        str(port),
    ]
    log = (Path(tempfile.gettempdir()) / "spane-e2e-server.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")  # stopped before other modules' event loops run
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="light", base_url=server
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def api(server: str, method: str, path: str, body: Any = None) -> Any:
    """A JSON call to the server under test."""
    import json

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / name))
