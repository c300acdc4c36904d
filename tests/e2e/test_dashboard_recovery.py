"""The dashboard's recovery and history views against ``spane dev``: retry a failed
execution (its task fails until the test sets a flag file), a refused retry's reason,
replay from a node with an edited input, the diff of two workflow versions, and the
executions list's time filter."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from .conftest import api, screenshot


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    return expect


def _start(server: str, workflow: str, data: Any) -> str:
    started = api(server, "POST", f"/v1/workflows/{workflow}/executions", {"input": data})
    execution_id: str = started["execution_id"]
    return execution_id


def _finished(server: str, execution_id: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        detail: dict[str, Any] = api(server, "GET", f"/v1/executions/{execution_id}")
        if detail["status"] not in ("pending", "running", "paused"):
            return detail
        assert time.monotonic() < deadline, f"{execution_id} still {detail['status']}"
        time.sleep(0.1)


def test_retry_a_failed_execution(page: Any, server: str, tmp_path: Path) -> None:
    expect = _expect()
    flag = tmp_path / "flag"
    execution_id = _start(server, "e2e-flaky", {"flag": str(flag)})
    page.goto(f"/#/executions/{execution_id}")
    badge = page.locator("h1 .badge")
    expect(badge).to_have_attribute("data-status", "failed")
    graph = page.get_by_test_id("graph")
    expect(graph.locator('[data-node="flaky"][data-status="failed"]')).to_be_visible()
    expect(page.get_by_text("not in the API yet")).to_have_count(0)
    retry = page.get_by_role("button", name="Retry", exact=True)
    expect(retry).to_be_enabled()
    graph.locator('[data-node="flaky"]').click()
    expect(page.get_by_test_id("node-error")).to_contain_text("the flag")
    screenshot(page, "dashboard-failed.png")

    flag.write_text("set")
    retry.click()
    expect(badge).to_have_attribute("data-status", "succeeded")
    expect(graph.locator('[data-node="finish"][data-status="succeeded"]')).to_be_visible()
    expect(page.get_by_test_id("execution-summary")).to_contain_text("Retried1 time")
    expect(retry).to_be_disabled()  # a succeeded execution cannot be retried
    assert api(server, "GET", f"/v1/executions/{execution_id}")["retries"] == 1


def test_a_refused_retry_shows_the_reason(page: Any, server: str, tmp_path: Path) -> None:
    """The server's 409 reason appears in the error banner. A real refusal needs an
    execution that looks retryable but is not (a child, an expired one): the response
    is substituted here, the rest is the real page."""
    expect = _expect()
    execution_id = _start(server, "e2e-flaky", {"flag": str(tmp_path / "never")})
    reason = f"execution {execution_id!r} is no longer retryable: expired"
    page.route(
        re.compile(r".*/v1/executions/[0-9a-f]+/retry$"),
        lambda route: route.fulfill(
            status=409,
            content_type="application/problem+json",
            body=json.dumps({"title": "Conflict", "status": 409, "detail": reason}),
        ),
    )
    page.goto(f"/#/executions/{execution_id}")
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "failed")
    page.get_by_role("button", name="Retry", exact=True).click()
    banner = page.get_by_test_id("action-error")
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_contain_text("409: " + reason)
    page.get_by_role("button", name="Dismiss the error").click()
    expect(banner).to_have_count(0)


def test_replay_from_a_node(page: Any, server: str) -> None:
    expect = _expect()
    old_id = _start(server, "e2e-fanout", {"shards": 2})
    assert _finished(server, old_id)["status"] == "succeeded"
    page.goto(f"/#/executions/{old_id}")
    page.get_by_test_id("graph").locator('[data-node="total"]').click()
    panel = page.get_by_test_id("node-panel")
    replay = panel.get_by_test_id("replay")
    replay.get_by_text("Replay from this node").click()
    textarea = replay.get_by_label("Input of the new execution (JSON)")
    expect(textarea).to_have_value(re.compile(r'"shards": 2'))
    textarea.fill("{not json")
    replay.get_by_role("button", name="Replay from total").click()
    expect(replay.get_by_role("alert")).to_contain_text("not valid JSON")
    textarea.fill('{"shards": 5}')
    replay.get_by_role("button", name="Replay from total").click()
    expect(page).not_to_have_url(re.compile(f"{old_id}$"))
    expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f]+$"))
    new_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "succeeded")
    link = page.get_by_test_id("replay-of")
    expect(link).to_have_attribute("href", f"#/executions/{old_id}")
    expect(page.get_by_label("execution input")).to_contain_text('"shards": 5')
    detail = api(server, "GET", f"/v1/executions/{new_id}")
    assert detail["replay_of"] == old_id
    link.click()
    expect(page).to_have_url(re.compile(f"#/executions/{old_id}$"))


VERSIONED = {
    "id": "e2e-versioned",
    "name": "Versioned",
    "description": "Registered twice with a change, to compare its versions.",
    "nodes": [
        {"id": "prepare", "function": "e2e.step"},
        {"id": "check", "function": "e2e.step", "after": ["prepare"]},
        {"id": "finish", "function": "e2e.total", "after": ["check"]},
    ],
}


def test_compare_two_versions_of_a_workflow(page: Any, server: str) -> None:
    expect = _expect()
    assert api(server, "POST", "/v1/workflows", VERSIONED)["version"] == 1
    changed = json.loads(json.dumps(VERSIONED))
    changed["nodes"][1] = {
        "id": "check",
        "function": "e2e.step",
        "after": ["prepare"],
        "timeout": "30s",
        "retry": {"max_attempts": 3},
    }
    changed["nodes"].insert(2, {"id": "audit", "function": "e2e.step", "after": ["prepare"]})
    changed["nodes"][3]["after"] = ["check", "audit"]
    assert api(server, "POST", "/v1/workflows", changed)["version"] == 2

    page.goto("/")
    row = page.get_by_test_id("workflows").locator("tr", has_text="e2e-versioned")
    row.get_by_role("link", name="Compare versions").click()
    expect(page).to_have_url(re.compile(r"#/workflows/e2e-versioned/diff$"))
    expect(page.get_by_label("Old version")).to_have_value("1")
    expect(page.get_by_label("New version")).to_have_value("2")
    stats = page.get_by_test_id("diff-stats")
    expect(stats).to_contain_text(re.compile("\\+\\d+ \u2212\\d+ lines"))
    diff = page.get_by_test_id("diff")
    expect(diff).to_have_attribute("data-view", "split")
    expect(diff.locator("td.diff-add", has_text="id: audit")).to_be_visible()
    expect(diff.locator("td.diff-add", has_text="max_attempts: 3")).to_be_visible()
    screenshot(page, "dashboard-workflow-diff.png")

    page.get_by_label("Unified").check()
    expect(diff).to_have_attribute("data-view", "unified")
    expect(diff.locator("tr.diff-add", has_text="id: audit")).to_be_visible()
    expect(diff.locator(".diff-hunk").first).to_contain_text(
        re.compile(r"^@@ -\d+,\d+ \+\d+,\d+ @@$")
    )
    page.get_by_role("button", name="Swap").click()
    expect(page).to_have_url(re.compile(r"a=2&b=1"))
    expect(diff.locator("tr.diff-del", has_text="id: audit")).to_be_visible()
    page.get_by_label("New version").select_option("2")
    expect(stats).to_contain_text("identical definitions")


def test_executions_time_filter(page: Any, server: str) -> None:
    expect = _expect()
    _start(server, "e2e-fanout", {"shards": 1})
    page.goto("/#/executions")
    table = page.get_by_test_id("executions")
    expect(table).to_contain_text("e2e-fanout")
    page.get_by_label("Created").select_option("hour")
    expect(page).to_have_url(re.compile("since=hour"))
    expect(table).to_contain_text("e2e-fanout")
    page.get_by_label("Status").select_option("succeeded")
    expect(page).to_have_url(re.compile("since=hour"))  # kept with the other filters
    expect(page).to_have_url(re.compile("status=succeeded"))

    # Two days later (the browser's clock), nothing was created in the last hour or day.
    page.clock.set_fixed_time(time.time() + 2 * 86_400)
    page.reload()
    expect(page.get_by_label("Created")).to_have_value("hour")
    expect(page.get_by_text("No execution matches these filters")).to_be_visible()
    expect(page.get_by_role("button", name="Older →")).to_have_count(0)
    page.get_by_label("Created").select_option("week")
    expect(table).to_contain_text("e2e-fanout")
    page.get_by_label("Created").select_option("all")
    expect(page).not_to_have_url(re.compile("since="))


def test_narrow_dark_diff_and_replay_form(browser: Any, server: str) -> None:
    """At 420px in the dark scheme: the diff starts unified, the replay form fits."""
    expect = _expect()
    api(server, "POST", "/v1/workflows", VERSIONED)  # same content: same version
    context = browser.new_context(
        viewport={"width": 420, "height": 800}, color_scheme="dark", base_url=server
    )
    try:
        tab = context.new_page()
        tab.goto("/#/workflows/e2e-versioned/diff?a=1&b=2")
        diff = tab.get_by_test_id("diff")
        expect(diff).to_have_attribute("data-view", "unified")
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 430, f"horizontal overflow at 420px: {width}"
        execution_id = _start(server, "e2e-fanout", {"shards": 1})
        _finished(server, execution_id)
        tab.goto(f"/#/executions/{execution_id}")
        tab.get_by_test_id("timeline").get_by_role("button", name="left").click()
        tab.get_by_text("Replay from this node").click()
        expect(tab.get_by_role("button", name="Replay from left")).to_be_visible()
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 430, f"horizontal overflow at 420px: {width}"
    finally:
        context.close()
