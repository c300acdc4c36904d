"""The dashboard's dead letters page: list, paging, inspect, redrive, drop.

A dead letter needs a consumer that keeps failing on a message, and ``spane dev`` has
no such consumer (a failing task fails its node; nothing from outside the process
makes its own consumers fail, and test-only endpoints stay out of spane/). So this
module serves the same app — ``create_app`` with the built dashboard — from an engine
in this process (uvicorn on its own event loop in a thread, embedded backends), with a
consumer on a pool of its own that fails every delivery while ``poisoned``: messages
published there are dead-lettered by the memory bus after its delivery limit, kept by
the orchestrator and served by ``/v1/dead-letters``, exactly as in ``spane dev``.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from .conftest import _free_port, api, screenshot

POOL = "e2e-poison"
PAGE = 25
CONSUMERS = 32


class FlakyConsumer:
    """Fails every batch while ``poisoned``; records the tasks it took afterwards."""

    def __init__(self) -> None:
        self.poisoned = True
        self.taken: list[str] = []

    async def __call__(self, batch: Sequence[Any]) -> None:
        if self.poisoned:
            raise RuntimeError("cannot process this message: the payload has no 'sku'")
        self.taken.extend(delivery.message.task_id for delivery in batch)


@dataclass
class InProcess:
    url: str
    loop: asyncio.AbstractEventLoop
    engine: Any
    flaky: FlakyConsumer
    stop: Any = None
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)


def _poison(n: int) -> Any:
    from spane.schemas.messages import TaskMessage

    return TaskMessage(
        task_id=f"order-{n:03d}:charge:1",
        execution_id=f"order-{n:03d}",
        workflow_id="checkout",
        version=3,
        node_id="charge",
        type=POOL,
        attempt=1,
        input={"order": n, "amount": 12.5 * n, "currency": "EUR", "note": "ü"},
    )


@pytest.fixture(scope="module")
def inproc() -> Iterator[InProcess]:
    import uvicorn

    from spane import Engine
    from spane.api import create_app
    from spane.config import Settings

    port = _free_port()
    holder: dict[str, Any] = {}

    async def main() -> None:
        settings = Settings(
            gc_tuning=False,
            amqp_url=None,
            redis_url=None,
            mongodb_url=None,
            api_keys=None,
            api_keys_file=None,
        )
        engine = Engine(settings=settings, pools=[])
        await engine.open()
        flaky = FlakyConsumer()
        # The memory bus redelivers a failed message alone, after a short delay, up to
        # its delivery limit: one consumer per message dead-letters them all at once.
        subscriptions = [
            await engine.bus.consume_tasks(POOL, flaky, prefetch=1) for _ in range(CONSUMERS)
        ]
        app = create_app(engine, manage_engine=False)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        holder["state"] = InProcess(
            url=f"http://127.0.0.1:{port}",
            loop=asyncio.get_running_loop(),
            engine=engine,
            flaky=flaky,
            stop=server,
        )
        try:
            await server.serve()
        finally:
            for subscription in subscriptions:
                await subscription.stop()
            await engine.close()

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the fixture
            holder.setdefault("errors", []).append(exc)

    thread = threading.Thread(target=thread_main, name="e2e-inproc-api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if not thread.is_alive():
            raise RuntimeError(f"the in-process API failed: {holder.get('errors')}")
        try:
            with urllib.request.urlopen(f"{url}/v1/dead-letters", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the in-process API did not start"
        time.sleep(0.05)
    state: InProcess = holder["state"]
    state.thread = thread
    try:
        yield state
    finally:
        state.stop.should_exit = True
        thread.join(30)


@pytest.fixture
def dl_page(browser: Any, inproc: InProcess) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="light", base_url=inproc.url
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    return expect


def _dead_letters(url: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        items: list[dict[str, Any]] = api(url, "GET", "/v1/dead-letters?limit=1000")["items"]
        if len(items) >= count:
            return items
        assert time.monotonic() < deadline, f"{len(items)} dead letters, expected {count}"
        time.sleep(0.1)


def test_empty_and_error_states(dl_page: Any, inproc: InProcess) -> None:
    expect = _expect()
    page = dl_page
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters").click()
    expect(page).to_have_url(re.compile(r"#/dead-letters$"))
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    expect(page.get_by_text("No dead letters.")).to_be_visible()
    page.route(
        re.compile(r".*/v1/dead-letters\?.*"),
        lambda route: route.fulfill(
            status=503,
            content_type="application/problem+json",
            body='{"title": "Service Unavailable", "status": 503, "detail": "the store is down"}',
        ),
    )
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("alert")).to_contain_text("503: the store is down")
    page.unroute(re.compile(r".*/v1/dead-letters\?.*"))
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.get_by_text("No dead letters.")).to_be_visible()


def test_list_page_inspect_redrive_and_drop(dl_page: Any, inproc: InProcess) -> None:
    expect = _expect()
    page = dl_page
    total = PAGE + 2
    inproc.run(inproc.engine.bus.publish_tasks([_poison(n) for n in range(1, total + 1)]))
    items = _dead_letters(inproc.url, total)
    newest = items[0]

    page.goto("/#/dead-letters")
    table = page.get_by_test_id("dead-letters")
    expect(table.locator("tbody tr")).to_have_count(PAGE)
    expect(table.locator("tbody tr").first).to_have_attribute("data-id", newest["id"])
    expect(table).to_contain_text("delivery limit")
    expect(table).to_contain_text(f"spane.tasks.{POOL}")
    screenshot(page, "dashboard-dead-letters.png")
    page.get_by_role("button", name="Older →").click()
    expect(page).to_have_url(re.compile(r"#/dead-letters\?cursor="))
    expect(table.locator("tbody tr")).to_have_count(total - PAGE)
    page.get_by_role("button", name="← Newer").click()
    expect(table.locator("tbody tr")).to_have_count(PAGE)

    # Inspect the newest.
    table.locator(f'tr[data-id="{newest["id"]}"]').get_by_role("link").click()
    detail = page.get_by_test_id("dead-letter")
    expect(detail).to_contain_text("Origin exchange")
    expect(detail).to_contain_text("spane.tasks")
    expect(detail).to_contain_text(POOL)
    expect(page.get_by_label("reason")).to_contain_text("the payload has no 'sku'")
    body = page.get_by_test_id("dead-letter-body")
    expect(body).to_have_attribute("data-format", "json")
    expect(body).to_contain_text('"node_id": "charge"')
    expect(body).to_contain_text('"note": "ü"')
    expect(detail).to_contain_text("JSON, pretty-printed")
    screenshot(page, "dashboard-dead-letter.png")

    # Redrive: asked first; "Keep it" goes back; then redriven, and taken by the consumer.
    page.get_by_role("button", name="Redrive").click()
    expect(
        page.get_by_text(f"Publish it again to spane.tasks ({POOL}) and forget it?")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Yes, redrive")).to_be_focused()
    page.get_by_role("button", name="Keep it").click()
    expect(page.get_by_role("button", name="Yes, redrive")).to_have_count(0)
    inproc.flaky.poisoned = False
    page.get_by_role("button", name="Redrive").click()
    page.get_by_role("button", name="Yes, redrive").click()
    outcome = page.locator('[data-outcome="redriven"]')
    expect(outcome).to_contain_text(
        f"Redriven: published again to spane.tasks with routing key {POOL}"
    )
    expect(page.get_by_role("button", name="Drop")).to_be_disabled()
    deadline = time.monotonic() + 10
    while newest["message_id"] not in inproc.flaky.taken:
        assert time.monotonic() < deadline, "the redriven message did not arrive"
        time.sleep(0.05)

    # Back to the list: one less; drop the next one.
    outcome.get_by_role("link", name="Back to the dead letters").click()
    expect(table.locator(f'tr[data-id="{newest["id"]}"]')).to_have_count(0)
    second = items[1]
    page.goto(f"/#/dead-letters/{second['id']}")
    page.get_by_role("button", name="Drop").click()
    page.get_by_role("button", name="Yes, drop it").click()
    expect(page.locator('[data-outcome="dropped"]')).to_contain_text("Dropped")
    assert len(api(inproc.url, "GET", "/v1/dead-letters?limit=1000")["items"]) == total - 2
    assert second["message_id"] not in inproc.flaky.taken

    # A dead letter that is gone: the error state with a way back.
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("404")
    expect(page.get_by_role("link", name="Dead letters").last).to_be_visible()


def test_narrow_dark_dead_letter(browser: Any, inproc: InProcess) -> None:
    expect = _expect()
    inproc.flaky.poisoned = True
    inproc.run(inproc.engine.bus.publish_tasks([_poison(900)]))
    deadline = time.monotonic() + 20
    while True:
        found = [i for i in _dead_letters(inproc.url, 1) if i["message_id"] == "order-900:charge:1"]
        if found:
            entry = found[0]
            break
        assert time.monotonic() < deadline, "order-900 was not dead-lettered"
        time.sleep(0.1)
    context = browser.new_context(
        viewport={"width": 420, "height": 800}, color_scheme="dark", base_url=inproc.url
    )
    try:
        tab = context.new_page()
        tab.goto("/#/dead-letters")
        expect(tab.get_by_test_id("dead-letters")).to_be_visible()
        tab.goto(f"/#/dead-letters/{entry['id']}")
        expect(tab.get_by_test_id("dead-letter-body")).to_contain_text('"order": 900')
        tab.get_by_role("button", name="Drop").click()
        expect(tab.get_by_role("button", name="Yes, drop it")).to_be_visible()
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 430, f"horizontal overflow at 420px: {width}"
    finally:
        context.close()
