"""A session's page: its traces appear live, filter and sort; the latency histogram; export."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import Viewer

CLOCK = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")

pytestmark = pytest.mark.ui


def test_traces_appear_live_and_can_be_filtered_and_sorted(
    page: Page, viewer: Viewer, screenshot: Callable[[Page, str], None]
) -> None:
    session = viewer.create_session(
        name="orders latency", targets=["dp-1", "dp-2"], capture=["headers"], max_samples=100
    )
    page.goto(f"/#/sessions/{session['id']}")
    expect(page.locator("#session-status")).to_have_text("active")
    expect(page.locator(".live")).to_be_visible()
    rows = page.locator("#traces-table tbody tr.trace-row")
    expect(page.locator("#traces-table tbody")).to_contain_text("No traces yet")
    expect(page.locator("#latency-chart")).to_contain_text("No traces yet")

    # Traffic arrives while the page is open: the table refreshes by itself.
    slow = viewer.trace(session["id"], "dp-1", upstream_ms=180.0)
    for upstream_ms in (6.0, 9.0, 14.0, 22.0, 35.0):
        viewer.trace(session["id"], "dp-1", upstream_ms=upstream_ms)
    failed = viewer.trace(session["id"], "dp-2", status=503, upstream_ms=60.0)
    viewer.trace(session["id"], "dp-2", method="POST", path="/demo/payments", status=404)
    expect(rows).to_have_count(8)
    expect(page.locator("#latency-stats")).to_contain_text("8 traces")
    expect(page.locator(".h-bucket rect.h-5xx")).to_have_count(1)
    expect(page.locator(".progress-item[data-node='dp-1'] .progress-count")).to_have_text("6/100")

    newest = rows.first
    expect(newest.locator("td")).to_have_text(
        [CLOCK, "dp-2", "POST", "/demo/payments orders", "404", "18.5 ms", "21", ""]
    )
    error_row = page.locator(f"tr[data-trace='{failed.hex_id}']")
    expect(error_row.locator(".badge-error")).to_have_text("error")
    screenshot(page, "session")

    page.locator("#filter-status_code").select_option("5xx")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-trace", failed.hex_id)
    assert "status_code=5xx" in page.url
    page.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(8)

    page.locator("#filter-min_duration_ms").fill("50")
    expect(rows).to_have_count(2)
    page.locator("#filter-node_id").select_option("dp-1")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-trace", slow.hex_id)
    page.get_by_role("button", name="Clear").click()
    page.locator("#filter-method").select_option("POST")
    expect(rows).to_have_count(1)
    page.locator("#filter-method").select_option("")
    page.locator("#filter-path").fill("/demo/pay")
    expect(rows).to_have_count(1)
    page.locator("#filter-path").fill("")
    page.locator("#filter-error").check()
    expect(rows).to_have_count(1)
    page.locator("#filter-error").uncheck()
    expect(rows).to_have_count(8)

    page.locator("button.sort[data-sort=duration]").click()
    expect(page.locator("button.sort[data-sort=duration]")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(rows.first).to_have_attribute("data-trace", slow.hex_id)
    expect(rows.first.locator(".duration")).to_have_text("187 ms")
    durations = [float(v.split()[0]) for v in rows.locator(".duration").all_inner_texts()]
    assert durations == sorted(durations, reverse=True)

    # A bar of the histogram filters the table to traces at least that slow.
    page.locator(".h-bucket.pickable").last.click()
    expect(rows).to_have_count(1)
    expect(page.locator("#filter-min_duration_ms")).not_to_have_value("")

    # A refresh that finds the same traces leaves the rows alone: a click on one is not lost to
    # a redraw between press and release. Once the second refresh's answer is in, the first
    # one's has been drawn (each refresh waits for the one before it).
    rows.first.evaluate("row => { row.dataset.kept = 'yes'; }")
    for _ in range(2):
        with page.expect_response(lambda response: "/traces?" in response.url):
            pass
    expect(rows.first).to_have_attribute("data-kept", "yes")

    # The filters live in the URL: back from a trace, the same view.
    rows.first.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text("GET /demo/orders")
    page.go_back()
    expect(rows).to_have_count(1)
    expect(page.locator("button.sort[data-sort=duration]")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_stop_ends_the_live_refresh(page: Page, viewer: Viewer) -> None:
    session = viewer.create_session(name="to stop")
    viewer.trace(session["id"])
    page.goto(f"/#/sessions/{session['id']}")
    expect(page.locator("#traces-table tbody tr.trace-row")).to_have_count(1)
    page.locator("#stop-session").click()
    expect(page.locator("#session-status")).to_have_text("stopped")
    expect(page.locator(".live")).to_be_hidden()
    expect(page.locator("#stop-session")).to_have_count(0)
    expect(page.locator(".defs")).to_contain_text("ended")


def test_delete_from_the_session_page(page: Page, viewer: Viewer) -> None:
    session = viewer.create_session(name="to delete")
    page.goto(f"/#/sessions/{session['id']}")
    page.locator("#delete-session").click()
    page.locator("dialog.modal[open]").get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{viewer.url}#/sessions")
    expect(page.locator(f"tr[data-session='{session['id']}']")).to_have_count(0)


def test_download_the_session_as_otlp_json(page: Page, viewer: Viewer, tmp_path: Path) -> None:
    session = viewer.create_session(name="export", targets=["dp-1", "dp-2"])
    traces = [viewer.trace(session["id"], node) for node in ("dp-1", "dp-2")]
    page.goto(f"/#/sessions/{session['id']}")
    expect(page.locator("#traces-table tbody tr.trace-row")).to_have_count(2)
    with page.expect_download() as started:
        page.locator("#download-session").click()
    download = started.value
    assert download.suggested_filename == f"session-{session['id']}.json"
    saved = tmp_path / "session.json"
    download.save_as(saved)
    exported = json.loads(saved.read_text())
    trace_ids = {
        span["traceId"]
        for resource_spans in exported["resourceSpans"]
        for scope in resource_spans["scopeSpans"]
        for span in scope["spans"]
    }
    assert trace_ids == {t.hex_id for t in traces}


def test_a_filter_typed_just_before_leaving_does_not_rewrite_the_next_page(
    page: Page, viewer: Viewer
) -> None:
    session = viewer.create_session(name="leaving", targets=["dp-1"], max_samples=10)
    viewer.trace(session["id"], "dp-1", upstream_ms=10.0)
    page.clock.install()  # the page's timers run when the test says (no waiting on them)
    page.goto(f"/#/sessions/{session['id']}")
    rows = page.locator("#traces-table tbody tr.trace-row")
    expect(rows).to_have_count(1)
    page.locator("#filter-path").fill("/demo")  # applied 300 ms after the last keystroke
    rows.first.locator("a").first.click()  # ...but the user leaves first
    expect(page.locator("h1")).to_contain_text("GET /demo/orders")
    trace_url = page.url
    page.clock.run_for(1_000)
    assert page.url == trace_url
    page.go_back()
    expect(rows).to_have_count(1)
    assert "path=" not in page.url
