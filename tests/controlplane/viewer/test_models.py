"""The viewer's view models: waterfall rows, critical path, summary and transaction map."""

from __future__ import annotations

from typing import Any

from controlplane.schemas import SpanPublic, SpanStatusPublic
from controlplane.viewer.models import (
    TraceLatency,
    critical_path,
    latency_histogram,
    summarize,
    waterfall,
)

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


def _latencies(*shape: tuple[float, int | None]) -> list[TraceLatency]:
    return [TraceLatency(duration, status, False) for duration, status in shape]


def test_histogram_buckets_are_round_and_cover_the_slowest_trace() -> None:
    histogram = latency_histogram(
        _latencies((3.0, 200), (12.5, 200), (14.0, 404), (95.0, 503), (0.0, 200))
    )
    assert histogram.count == 5
    step = histogram.buckets[0].high_ms
    assert step == 5.0  # 95 ms over at most 30 buckets: the next round width above 3.17
    assert [b.low_ms for b in histogram.buckets] == [i * 5.0 for i in range(19)]
    assert histogram.buckets[-1].high_ms == 95.0  # the last bucket includes the slowest trace
    assert sum(b.count for b in histogram.buckets) == 5
    assert (histogram.buckets[0].ok, histogram.buckets[2].client_error) == (2, 1)
    assert histogram.buckets[-1].server_error == 1
    assert histogram.buckets[2].ok == 1


def test_histogram_outcomes_and_percentiles() -> None:
    traces = [TraceLatency(float(ms), 200, False) for ms in range(1, 101)]
    traces.append(TraceLatency(50.0, None, True))  # no response at all: a failure
    histogram = latency_histogram(traces, max_buckets=10)
    assert len(histogram.buckets) == 10
    assert (histogram.p50_ms, histogram.p95_ms, histogram.p99_ms) == (50.0, 95.0, 99.0)
    assert histogram.max_ms == 100.0
    assert sum(b.server_error for b in histogram.buckets) == 1
    assert sum(b.ok for b in histogram.buckets) == 100


def test_histogram_of_nothing_and_of_instant_requests() -> None:
    empty = latency_histogram([])
    assert (empty.count, empty.buckets, empty.p50_ms) == (0, [], None)
    instant = latency_histogram(_latencies((0.0, 200), (0.0, 500)))
    assert len(instant.buckets) == 1
    assert (instant.buckets[0].ok, instant.buckets[0].server_error) == (1, 1)


def test_histogram_steps_are_one_two_two_and_a_half_or_five() -> None:
    for slowest, step in (
        (0.3, 0.01),
        (7.0, 0.25),
        (29.0, 1.0),
        (31.0, 2.0),
        (4000.0, 200.0),
        (7000.0, 250.0),
    ):
        histogram = latency_histogram(_latencies((slowest, 200)))
        assert histogram.buckets[0].high_ms == step, slowest
        assert len(histogram.buckets) <= 30


def test_body_filter_plugins_are_response_steps_after_header_filters() -> None:
    spans = [
        *_trace(),
        _span("bf", "gateway.body_filter", 91, 95, "root"),
        _span(
            "gzip",
            "gateway.body_filter.plugin.response-transformer",
            91,
            95,
            "bf",
            attrs={"gateway.plugin.name": "response-transformer"},
        ),
    ]
    steps = summarize("t" * 32, spans).steps
    response = [(s.name, s.phase) for s in steps if s.side == "response"]
    assert response == [("cors", "header_filter"), ("response-transformer", "body_filter")]


def test_a_request_refused_by_a_plugin_has_no_upstream_step() -> None:
    spans = [
        _span("root", "GET /orders", 0, 3, kind="SERVER", attrs={"http.response.status_code": 401}),
        _span("router", "gateway.router", 0, 1, "root"),
        _span("access", "gateway.access", 1, 2, "root"),
        _span(
            "auth",
            "gateway.access.plugin.key-auth",
            1,
            2,
            "access",
            attrs={"gateway.plugin.name": "key-auth", "http.response.status_code": 401},
        ),
    ]
    summary = summarize("t" * 32, spans)
    assert [(s.kind, s.name, s.status) for s in summary.steps] == [
        ("router", "router", None),
        ("plugin", "key-auth", 401),
    ]
    assert summary.metrics.status_code == 401
    assert summary.metrics.upstream_ms is None


def test_spans_whose_parent_never_arrived_are_shown_as_roots() -> None:
    spans = [
        _span("root", "GET /orders", 0, 10, kind="SERVER"),
        _span("late", "GET /orders handler", 2, 8, "missing", kind="SERVER", service="shop"),
    ]
    rows = waterfall(spans)
    assert [(r.span_id, r.depth) for r in rows] == [("root", 0), ("late", 0)]
    assert rows[1].offset_pct == 20
    assert rows[1].width_pct == 60
