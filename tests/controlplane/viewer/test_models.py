"""The viewer's view models: waterfall rows, critical path, summary and transaction map."""

from __future__ import annotations

from typing import Any

from controlplane.schemas import SpanPublic, SpanStatusPublic
from controlplane.viewer.models import critical_path, summarize, waterfall

MS = 1_000_000


def _span(
    span_id: str,
    name: str,
    start_ms: float,
    end_ms: float,
    parent: str | None = None,
    *,
    kind: str = "INTERNAL",
    service: str = "activetrace-dataplane",
    error: bool = False,
    attrs: dict[str, Any] | None = None,
) -> SpanPublic:
    return SpanPublic(
        trace_id="t" * 32,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=int(start_ms * MS),
        end_time_unix_nano=int(end_ms * MS),
        duration_ms=end_ms - start_ms,
        status=SpanStatusPublic(code="ERROR" if error else "UNSET"),
        service_name=service,
        node_id="dp-1",
        attributes=attrs or {},
        events=[],
    )


def _trace() -> list[SpanPublic]:
    return [
        _span(
            "root",
            "GET /orders",
            0,
            100,
            kind="SERVER",
            attrs={
                "gateway.latency.total_ms": 100.0,
                "gateway.latency.gateway_ms": 30.0,
                "gateway.latency.upstream_ms": 70.0,
                "http.response.status_code": 200,
                "http.request.body.size": 0,
                "http.response.body.size": 42,
            },
        ),
        _span("router", "gateway.router", 0, 2, "root"),
        _span("access", "gateway.access", 2, 12, "root"),
        _span(
            "auth",
            "gateway.access.plugin.key-auth",
            2,
            4,
            "access",
            attrs={"gateway.plugin.name": "key-auth"},
        ),
        _span(
            "rl",
            "gateway.access.plugin.rate-limiting",
            4,
            12,
            "access",
            attrs={"gateway.plugin.name": "rate-limiting"},
        ),
        _span("bal", "gateway.balancer", 12, 90, "root", attrs={"gateway.upstream.name": "shop"}),
        _span(
            "try1",
            "gateway.upstream",
            12,
            20,
            "bal",
            kind="CLIENT",
            error=True,
            attrs={"error.type": "connection_refused"},
        ),
        _span(
            "try2",
            "gateway.upstream",
            20,
            90,
            "bal",
            kind="CLIENT",
            attrs={"http.response.status_code": 200},
        ),
        _span("dns", "gateway.dns", 20, 21, "try2", kind="CLIENT"),
        _span("conn", "gateway.upstream.connect", 21, 23, "try2"),
        _span("ttfb", "gateway.upstream.ttfb", 24, 80, "try2"),
        _span("svc", "GET /orders handler", 30, 75, "try2", kind="SERVER", service="shop"),
        _span("hf", "gateway.header_filter", 90, 91, "root"),
        _span(
            "cors",
            "gateway.header_filter.plugin.cors",
            90,
            91,
            "hf",
            attrs={"gateway.plugin.name": "cors"},
        ),
        _span("write", "gateway.response.write", 91, 98, "root"),
        _span("log", "gateway.log", 98, 100, "root"),
        _span(
            "hl",
            "gateway.log.plugin.http-log",
            98,
            100,
            "log",
            attrs={"gateway.plugin.name": "http-log"},
        ),
    ]


def test_waterfall_is_a_depth_first_tree_on_one_axis() -> None:
    rows = waterfall(_trace())
    assert [(r.name, r.depth) for r in rows][:8] == [
        ("GET /orders", 0),
        ("gateway.router", 1),
        ("gateway.access", 1),
        ("gateway.access.plugin.key-auth", 2),
        ("gateway.access.plugin.rate-limiting", 2),
        ("gateway.balancer", 1),
        ("gateway.upstream", 2),
        ("gateway.upstream", 2),
    ]
    by_id = {r.span_id: r for r in rows}
    assert by_id["root"].offset_pct == 0
    assert by_id["root"].width_pct == 100
    assert by_id["bal"].offset_pct == 12
    assert by_id["bal"].width_pct == 78
    assert by_id["svc"].depth == 3  # the upstream service's span under the try it continues
    assert by_id["try1"].error
    assert not by_id["try2"].error
    assert by_id["access"].has_children
    assert not by_id["router"].has_children


def test_critical_path_follows_what_each_span_waited_for() -> None:
    critical = critical_path(_trace())
    assert {
        "root",
        "log",
        "write",
        "hf",
        "bal",
        "try2",
        "ttfb",
        "access",
        "rl",
        "auth",
        "router",
    } <= critical
    assert "svc" not in critical  # ttfb ends after the service span; the gateway waited on ttfb
    assert "try1" in critical  # the failed try came before the successful one


def test_summary_metrics() -> None:
    summary = summarize("t" * 32, _trace())
    metrics = summary.metrics
    assert (metrics.total_ms, metrics.gateway_ms, metrics.upstream_ms) == (100.0, 30.0, 70.0)
    assert metrics.ttfb_ms == 56.0
    assert metrics.dns_ms == 1.0
    assert metrics.connect_ms == 2.0
    assert metrics.tls_ms is None
    assert metrics.status_code == 200
    assert metrics.response_bytes == 42
    assert metrics.tries == 2


def test_transaction_map_lists_steps_in_order_and_marks_the_slowest() -> None:
    steps = summarize("t" * 32, _trace()).steps
    assert [(s.side, s.name) for s in steps] == [
        ("request", "router"),
        ("request", "key-auth"),
        ("request", "rate-limiting"),
        ("upstream", "shop"),
        ("response", "cors"),
        ("log", "http-log"),
    ]
    assert [s.name for s in steps if s.slowest] == ["shop"]
    upstream = steps[3]
    assert upstream.status == 200
    assert upstream.error is True  # one try failed
    assert steps[2].duration_ms == 8.0


def test_empty_trace() -> None:
    assert waterfall([]) == []
    summary = summarize("x", [])
    assert summary.steps == []
    assert summary.metrics.total_ms is None
