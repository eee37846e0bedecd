"""One trace: the summary (metrics, transaction map) and the waterfall with span details."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import Viewer
from tests.ui.gateway_traces import XSS, GatewayTrace

pytestmark = pytest.mark.ui


def _traced(viewer: Viewer, **shape: Any) -> tuple[dict[str, Any], GatewayTrace]:
    session = viewer.create_session(name="checkout latency", capture=["headers"])
    return session, viewer.trace(session["id"], header_value=XSS, **shape)


def test_summary_shows_the_metrics_and_the_transaction_map(
    page: Page, viewer: Viewer, screenshot: Callable[[Page, str], None]
) -> None:
    _, trace = _traced(viewer, upstream_ms=42.0)
    page.goto(f"/#/traces/{trace.hex_id}")

    expect(page.locator("h1")).to_contain_text("GET /demo/orders")
    metrics = page.locator("#trace-metrics")
    expect(metrics.locator("[data-metric=total] .metric-value")).to_have_text("48.5 ms")
    expect(metrics.locator("[data-metric=upstream] .metric-value")).to_have_text("43.0 ms")
    expect(metrics.locator("[data-metric=gateway] .metric-value")).to_have_text("5.50 ms")
    expect(metrics.locator("[data-metric=ttfb] .metric-value")).to_have_text("42.0 ms")
    expect(metrics.locator("[data-metric=dns] .metric-value")).to_have_text("180 µs")
    expect(metrics.locator("[data-metric=connect] .metric-value")).to_have_text("420 µs")
    expect(metrics.locator("[data-metric=tls] .metric-value")).to_have_text("—")
    expect(metrics.locator("[data-metric=status] .metric-value")).to_have_text("200")
    expect(metrics.locator("[data-metric=response-size] .metric-value")).to_have_text("2.3 KiB")

    steps = page.locator("#transaction-map .map-step")
    expect(steps.locator(".step-name")).to_have_text(
        ["router", "key-auth", "rate-limiting", "demo", "cors", "response-transformer", "http-log"]
    )
    expect(steps.locator(".step-time")).to_have_text(
        ["70 µs", "400 µs", "1.30 ms", "43.0 ms", "80 µs", "150 µs", "600 µs"]
    )
    request = page.locator(".map-group-request .map-step")
    expect(request.locator(".step-name")).to_have_text(["router", "key-auth", "rate-limiting"])
    expect(request.locator(".step-phase")).to_have_text(["access"] * 3)
    response = page.locator(".map-group-response .map-step")
    expect(response.locator(".step-name")).to_have_text(["cors", "response-transformer"])
    expect(response.locator(".step-phase")).to_have_text(["header filter"] * 2)
    expect(page.locator(".map-log .map-step .step-name")).to_have_text(["http-log"])
    slowest = page.locator(".map-step.slowest")
    expect(slowest).to_have_count(1)
    expect(slowest).to_have_attribute("data-name", "demo")
    expect(slowest.locator(".slowest-badge")).to_have_text("slowest")
    screenshot(page, "summary")

    slowest.click()  # a step opens its span in the trace view
    expect(page.locator("#span-detail .detail-title")).to_have_text("gateway.balancer")
    expect(page.locator(".wf-row.selected")).to_have_attribute("data-name", "gateway.balancer")


def test_waterfall_tree_critical_path_and_span_details(
    page: Page, viewer: Viewer, screenshot: Callable[[Page, str], None]
) -> None:
    _, trace = _traced(viewer, upstream_ms=25.0)
    page.goto(f"/#/traces/{trace.hex_id}/waterfall")

    rows = page.locator(".wf-row")
    expect(rows).to_have_count(len(trace.gateway) + len(trace.service))
    root = rows.first
    expect(root).to_have_attribute("data-name", "GET /demo/orders")
    expect(root).to_have_attribute("data-depth", "0")
    expect(root).to_have_class("wf-row critical")
    upstream = page.locator(".wf-row[data-name='gateway.upstream']")
    handler = page.locator(".wf-row[data-name='GET /orders']")
    expect(handler).to_have_attribute("data-depth", "3")  # the service's span under the try
    expect(handler.locator(".service-tag")).to_have_text("orders-service")
    expect(page.locator(".wf-row[data-name='SELECT orders']")).to_have_attribute("data-depth", "4")
    critical = page.locator(".wf-row.critical")
    for name in ("gateway.balancer", "gateway.upstream", "gateway.upstream.ttfb"):
        expect(critical.and_(page.locator(f"[data-name='{name}']"))).to_have_count(1)
    # The gateway waited on the ttfb span, which ends after the service's own span.
    expect(handler).not_to_have_class("critical")
    expect(handler).to_have_class("wf-row external")
    # Every bar sits on the shared axis: the root spans all of it.
    bar = root.locator(".wf-bar")
    expect(bar).to_have_css("left", "0px")

    # Collapse the balancer: the upstream try and everything below it disappear.
    balancer = page.locator(".wf-row[data-name='gateway.balancer']")
    toggle = balancer.locator(".wf-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(upstream).to_be_hidden()
    expect(handler).to_be_hidden()
    expect(page.locator(".wf-row[data-name='gateway.response.write']")).to_be_visible()
    toggle.click()
    expect(handler).to_be_visible()
    page.locator("#collapse-all").click()
    expect(rows.filter(visible=True)).to_have_count(7)  # the root and its direct children
    page.locator("#expand-all").click()
    expect(handler).to_be_visible()

    # Clicking a span shows all its attributes, events and captured headers, as text.
    root.click()
    detail = page.locator("#span-detail")
    expect(detail.locator(".detail-title")).to_have_text("GET /demo/orders")
    headers = detail.locator("#request-headers")
    expect(headers.locator("tr", has_text="x-client-name").locator("td")).to_have_text(XSS)
    expect(headers.locator("tr", has_text="authorization").locator("td")).to_have_text("[REDACTED]")
    expect(detail.locator("#response-headers")).to_contain_text("x-ratelimit-remaining")
    attributes = detail.locator("#span-attributes")
    expect(attributes.locator("tr", has_text="gateway.route.name").locator("td")).to_have_text(
        "orders"
    )
    expect(page.locator("script", has_text="alert(1)")).to_have_count(0)
    expect(page).to_have_url(
        f"{viewer.url}#/traces/{trace.hex_id}/waterfall?span={root.get_attribute('data-span-id')}"
    )
    screenshot(page, "trace")

    handler.click()
    expect(detail.locator(".detail-title")).to_have_text("GET /orders")
    expect(detail.locator(".service-tag")).to_have_text("orders-service")


def test_errors_are_marked_and_events_listed(page: Page, viewer: Viewer) -> None:
    _, trace = _traced(viewer, status=503, upstream_ms=8.0)
    page.goto(f"/#/traces/{trace.hex_id}/waterfall")
    expect(page.locator(".wf-row.error[data-name='gateway.upstream']")).to_have_count(1)
    expect(page.locator(".wf-row.error[data-name='GET /orders']")).to_have_count(1)
    page.locator(".wf-row[data-name='GET /orders']").click()
    detail = page.locator("#span-detail")
    expect(detail.locator(".badge-error")).to_have_text("ERROR")
    expect(detail.locator(".alert-error")).to_have_text("query timed out")
    events = detail.locator(".events li")
    expect(events).to_have_count(1)
    expect(events.locator("strong")).to_have_text("exception")
    expect(events.locator("tr", has_text="exception.message").locator("td")).to_have_text(
        "query timed out"
    )

    page.get_by_role("tab", name="Summary").click()
    expect(page.locator("[data-metric=status] .metric-value")).to_have_text("503")
    expect(page.locator(".map-step.map-upstream")).to_have_class(
        "map-step map-upstream slowest error"
    )


def test_download_the_trace_as_otlp_json(page: Page, viewer: Viewer, tmp_path: Path) -> None:
    _, trace = _traced(viewer)
    page.goto(f"/#/traces/{trace.hex_id}")
    with page.expect_download() as started:
        page.locator("#download-trace").click()
    download = started.value
    assert download.suggested_filename == f"trace-{trace.hex_id}.json"
    saved = tmp_path / "trace.json"
    download.save_as(saved)
    exported = json.loads(saved.read_text())
    services = {
        attribute["value"]["stringValue"]
        for resource_spans in exported["resourceSpans"]
        for attribute in resource_spans["resource"]["attributes"]
        if attribute["key"] == "service.name"
    }
    assert services == {"activetrace-dataplane", "orders-service"}
    span_count = sum(
        len(scope["spans"]) for rs in exported["resourceSpans"] for scope in rs["scopeSpans"]
    )
    assert span_count == len(trace.gateway) + len(trace.service)


def test_logs_of_the_node_are_listed_as_text(page: Page, viewer: Viewer) -> None:
    _, trace = _traced(viewer)
    page.goto(f"/#/traces/{trace.hex_id}/logs")
    lines = page.locator("#trace-logs tbody tr")
    expect(lines).to_have_count(2)
    expect(lines.nth(0).locator("td")).to_have_text(
        [
            re.compile(r"^\+\d+ µs$"),
            "INFO",
            "dataplane.plugins.key_auth",
            "consumer web authenticated",
            re.compile("^[0-9a-f]{16}$"),
        ]
    )
    expect(lines.nth(1).locator(".log-message")).to_have_text(f"upstream chosen for {XSS}")
    expect(lines.nth(1).locator(".level")).to_have_text("WARNING")
    page.get_by_role("tab", name="Trace").click()
    page.locator(".wf-row").first.click()
    expect(page.locator("#span-detail .events > li")).to_have_count(2)


def test_captured_bodies_are_shown_as_text(page: Page, viewer: Viewer) -> None:
    _, trace = _traced(viewer, method="POST")
    page.goto(f"/#/traces/{trace.hex_id}/waterfall")
    page.locator(".wf-row").first.click()
    bodies = page.locator("#span-detail .body-capture")
    expect(bodies).to_have_text(
        [
            '{"item": "<img src=x onerror=alert(1)>", "qty',
            '{"orders": [{"id": 1, "status": "shipped"}]}',
        ]
    )
    request_body = page.locator("#span-detail .detail-section").filter(has_text="Request body")
    expect(request_body).to_contain_text("truncated")
    expect(page.locator("#span-detail img")).to_have_count(0)
