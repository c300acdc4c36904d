"""The dashboard in a real browser against ``spane dev``: workflows, the graph, starting
from the form, live node colours, a signal from the form, cancel, and why a node waits.
Screenshots (light, 1280x800) go to docs/img/ for the README."""

from __future__ import annotations

import re
from typing import Any

from .conftest import api, screenshot


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # a loaded machine: React Flow measures, then draws edges
    return expect


def test_workflows_list_and_graph(page: Any) -> None:
    expect = _expect()
    page.goto("/")
    table = page.get_by_test_id("workflows")
    expect(table).to_contain_text("Fan out, fan in")
    expect(table).to_contain_text("e2e-approval")
    screenshot(page, "dashboard-workflows.png")
    page.get_by_role("link", name="Approval").click()
    expect(page.get_by_role("heading", name=re.compile("Approval"))).to_be_visible()
    graph = page.get_by_test_id("graph")
    for node in ("prepare", "approve", "route", "ship", "refund", "notify"):
        expect(graph.locator(f'[data-node="{node}"]')).to_be_visible()
    expect(page.locator(".react-flow__edge-text", has_text="approved")).to_be_visible()
    screenshot(page, "dashboard-workflow-graph.png")
    page.get_by_role("tab", name="Definition (YAML)").click()
    expect(page.get_by_test_id("yaml")).to_contain_text("signal: approve")


def test_start_from_the_form_and_watch_nodes_turn_green(page: Any) -> None:
    expect = _expect()
    page.goto("/#/workflows/e2e-fanout")
    form = page.get_by_test_id("start-form")
    textarea = form.locator("textarea")
    textarea.fill("{}")
    form.get_by_role("button", name="Start").click()
    expect(form.get_by_role("alert")).to_contain_text('missing required property "shards"')
    textarea.fill('{"shards": 3}')
    form.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile(r"#/executions/[0-9a-f]+$"))
    graph = page.get_by_test_id("graph")
    for node in ("prepare", "left", "middle", "right", "total"):
        expect(graph.locator(f'[data-node="{node}"][data-status="succeeded"]')).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_test_id("timeline").locator(".timeline-bar")).to_have_count(5)
    page.get_by_test_id("timeline").get_by_role("button", name="total").click()
    panel = page.get_by_test_id("node-panel")
    expect(panel).to_contain_text('"parts": 3')
    screenshot(page, "dashboard-execution.png")


def test_send_a_signal_from_the_form(page: Any, server: str) -> None:
    expect = _expect()
    execution_id = api(server, "POST", "/v1/workflows/e2e-approval/executions", {"input": {}})[
        "execution_id"
    ]
    page.goto(f"/#/executions/{execution_id}")
    waiting = page.get_by_test_id("why-waiting")
    expect(waiting.locator('[data-node="approve"]')).to_contain_text(
        "waits for the signal 'approve'"
    )
    form = page.get_by_test_id("signal-approve")
    form.locator("textarea").fill('{"ok": "yes"}')
    form.get_by_role("button", name="Send approve").click()
    expect(form.get_by_role("alert")).to_contain_text('"ok": expected "boolean"')
    screenshot(page, "dashboard-signal.png")
    form.locator("textarea").fill('{"ok": true}')
    form.get_by_role("button", name="Send approve").click()
    graph = page.get_by_test_id("graph")
    expect(graph.locator('[data-node="ship"][data-status="succeeded"]')).to_be_visible()
    expect(graph.locator('[data-node="refund"][data-status="skipped"]')).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "succeeded")


def test_why_waiting_behind_a_delay_then_cancel(page: Any, server: str) -> None:
    expect = _expect()
    execution_id = api(server, "POST", "/v1/workflows/e2e-delay/executions", {"input": {}})[
        "execution_id"
    ]
    page.goto(f"/#/executions/{execution_id}")
    waiting = page.get_by_test_id("why-waiting")
    nap = waiting.locator('[data-node="nap"]')
    expect(nap).to_have_attribute("data-kind", "delay")
    expect(nap).to_contain_text("a delay: its timer fires at")
    expect(nap).to_contain_text(re.compile(r"fires in (59|60) min"))
    follow = waiting.locator('[data-node="follow_up"]')
    expect(follow).to_contain_text("nap.success")
    page.get_by_test_id("graph").locator('[data-node="nap"]').click()
    expect(page.get_by_test_id("node-panel")).to_contain_text("Waiting:")
    screenshot(page, "dashboard-why-waiting.png")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("h1 .badge")).to_have_attribute("data-status", "cancelled")
    expect(waiting).to_contain_text("nothing is waiting")


def test_executions_list_filters(page: Any, server: str) -> None:
    expect = _expect()
    api(server, "POST", "/v1/workflows/e2e-fanout/executions", {"input": {"shards": 1}})
    page.goto("/#/executions")
    table = page.get_by_test_id("executions")
    expect(table).to_contain_text("e2e-fanout")
    expect(page.get_by_test_id("live")).to_contain_text("live")
    page.get_by_label("Workflow").select_option("e2e-delay")
    expect(page).to_have_url(re.compile("workflow_id=e2e-delay"))
    expect(table.locator("tbody tr").first).to_contain_text("e2e-delay")
    expect(table).not_to_contain_text("e2e-fanout")
    page.get_by_label("Workflow").select_option("")
    page.get_by_label("Status").select_option("succeeded")
    expect(page).to_have_url(re.compile("status=succeeded"))
    screenshot(page, "dashboard-executions.png")


def test_narrow_window_and_dark_scheme(browser: Any, server: str) -> None:
    expect = _expect()
    context = browser.new_context(
        viewport={"width": 420, "height": 800}, color_scheme="dark", base_url=server
    )
    try:
        tab = context.new_page()
        tab.goto("/#/workflows/e2e-fanout")
        expect(tab.get_by_test_id("graph")).to_be_visible()
        expect(tab.get_by_test_id("start-form")).to_be_visible()
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 430, f"horizontal overflow at 420px: {width}"
        background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 18, 22)"
        screenshot(tab, "dashboard-dark-narrow.png")
    finally:
        context.close()


def test_unknown_execution_shows_an_error(page: Any) -> None:
    expect = _expect()
    page.goto("/#/executions/does-not-exist")
    expect(page.get_by_role("alert").first).to_contain_text("404")
