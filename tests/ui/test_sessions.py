"""Sessions: the create form with live rule validation, the list, stop and delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import Viewer

pytestmark = pytest.mark.ui


def test_create_a_session_in_the_form(
    page: Page, viewer: Viewer, screenshot: Callable[[Page, str], None]
) -> None:
    page.goto("/#/sessions")
    page.get_by_role("link", name="New session").first.click()
    expect(page.locator("h1")).to_have_text("New tracing session")
    targets = page.locator("input[name=targets]")
    expect(targets).to_have_count(3)
    expect(page.get_by_label("dp-retired")).to_be_disabled()  # only live nodes can be picked
    submit = page.locator("#create-session")
    expect(submit).to_be_disabled()  # no target yet

    page.locator("#session-name").fill("slow orders")
    page.get_by_label("dp-1").check()
    page.get_by_role("radio", name="Route").check()
    page.locator("#scope-route").select_option("orders")
    rule = page.locator("#sampling-rule")

    # An invalid rule: the compiler's error is underlined where it is, and blocks the submit.
    rule.fill('http.method = "GET" && http.path ^= "/demo"')
    problem = page.locator(".rule-problem")
    expect(problem.locator(".rule-error")).to_have_text("=")
    expect(problem.locator(".rule-message")).to_have_text(
        "at 12\u201313: unexpected character '='; did you mean '=='?"
    )
    expect(problem.locator(".rule-preview")).to_have_text(
        'http.method = "GET" && http.path ^= "/demo"'
    )
    expect(rule).to_have_attribute("aria-invalid", "true")
    expect(submit).to_be_disabled()
    page.locator("#max-samples").fill("20")
    page.locator("#duration").fill("10")
    page.get_by_label("Headers").check()
    screenshot(page, "new-session")

    # Offsets count characters, not UTF-16 units: the underline stays on the unknown field.
    rule.fill('http.path == "/café/🙂" && http.metod == "GET"')
    expect(problem.locator(".rule-error")).to_have_text("http.metod")
    expect(problem.locator(".rule-message")).to_contain_text("did you mean 'http.method'?")

    rule.fill('http.method == "GET" && http.path ^= "/demo/orders"')
    expect(page.locator(".rule-ok")).to_have_text("✓ Valid rule · uses http.method, http.path")
    expect(problem).to_have_count(0)
    expect(submit).to_be_enabled()
    submit.click()

    expect(page.locator("#session-status")).to_have_text("active")
    session_id = page.url.rsplit("/", 1)[1]
    session = viewer.stack.ok("GET", f"/api/v1/tracing-sessions/{session_id}")
    assert session["name"] == "slow orders"
    assert [t["node_id"] for t in session["targets"]] == ["dp-1"]
    assert session["scope"]["kind"] == "route"
    assert session["scope"]["name"] == "orders"
    assert session["sampling_rule"] == 'http.method == "GET" && http.path ^= "/demo/orders"'
    assert (session["max_samples"], session["duration_secs"]) == (20, 600)
    assert session["capture"] == ["headers"]
    viewer.stack.ok("POST", f"/api/v1/tracing-sessions/{session_id}/stop")


def test_a_tail_rule_is_explained_and_an_empty_rule_traces_everything(
    page: Page, viewer: Viewer
) -> None:
    page.goto("/#/sessions/new")
    expect(page.locator("#rule-feedback")).to_have_text("Empty: every request in scope is traced.")
    page.locator("#sampling-rule").fill("http.response.status >= 500")
    expect(page.locator(".rule-note")).to_contain_text("tail sampling")
    page.locator("#sampling-rule").fill("")
    expect(page.locator("#rule-feedback")).to_have_text("Empty: every request in scope is traced.")
    page.get_by_label("dp-2").check()
    page.get_by_role("radio", name="Service").check()
    expect(page.locator("#scope-service")).to_have_value("demo")
    page.locator("#create-session").click()
    expect(page.locator("#session-status")).to_have_text("active")
    session_id = page.url.rsplit("/", 1)[1]
    session = viewer.stack.ok("GET", f"/api/v1/tracing-sessions/{session_id}")
    assert session["sampling_rule"] is None
    assert session["scope"]["kind"] == "service"
    viewer.stack.ok("POST", f"/api/v1/tracing-sessions/{session_id}/stop")


def test_sessions_list_progress_stop_and_delete(
    page: Page, viewer: Viewer, screenshot: Callable[[Page, str], None]
) -> None:
    done = viewer.create_session(
        name="errors on dp-2", targets=["dp-2"], sampling_rule="http.response.status >= 500"
    )
    viewer.trace(done["id"], "dp-2", status=503)
    viewer.stack.ok("POST", f"/api/v1/tracing-sessions/{done['id']}/stop")
    live = viewer.create_session(
        name="checkout p99",
        targets=["dp-1", "dp-2"],
        scope={"route": "orders"},
        sampling_rule='http.method == "POST" && http.path ^= "/demo/orders"',
        max_samples=10,
    )
    for _ in range(3):
        viewer.trace(live["id"], "dp-1", method="POST")
    viewer.trace(live["id"], "dp-2", method="POST")

    page.goto("/#/sessions")
    row = page.locator(f"tr[data-session='{live['id']}']")
    expect(row.locator(".session-status")).to_have_text("active")
    expect(row).to_contain_text("route orders")
    expect(row.locator(".progress-item[data-node='dp-1'] .progress-count")).to_have_text("3/10")
    expect(row.locator(".progress-item[data-node='dp-2'] .progress-count")).to_have_text("1/10")
    expect(row.locator(".time-left")).to_contain_text("left")
    stopped = page.locator(f"tr[data-session='{done['id']}']")
    expect(stopped.locator(".session-status")).to_have_text("stopped")
    expect(stopped.get_by_role("button", name="Stop")).to_have_count(0)
    screenshot(page, "sessions")

    page.locator("#session-status-filter").select_option("stopped")
    expect(row).to_have_count(0)
    expect(stopped).to_be_visible()
    page.locator("#session-status-filter").select_option("")
    row.get_by_role("button", name="Stop").click()
    expect(row.locator(".session-status")).to_have_text("stopped")

    row.get_by_role("button", name="Delete").click()
    dialog = page.locator("dialog.modal[open]")
    expect(dialog).to_contain_text("checkout p99")
    dialog.get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    row.get_by_role("button", name="Delete").click()
    page.locator("dialog.modal[open]").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert viewer.stack.call("GET", f"/api/v1/tracing-sessions/{live['id']}").status_code == 404
