"""View models of a trace: the summary (metrics + transaction map) and the waterfall rows.

Pure functions of the spans, as in jaeger-ui: the pages only draw what these return.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from controlplane.schemas import SpanPublic

__all__ = [
    "LatencyBucket",
    "LatencyHistogram",
    "MapStep",
    "TraceLatency",
    "TraceMetrics",
    "TraceSummary",
    "WaterfallRow",
    "critical_path",
    "latency_histogram",
    "summarize",
    "waterfall",
]

GATEWAY = "activetrace-dataplane"


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    """One span as a row of the waterfall."""

    span_id: str
    parent_span_id: str | None
    name: str
    service_name: str
    depth: int
    offset_pct: float  # start, as a share of the trace's time range
    width_pct: float
    start_ms: float  # from the trace start
    duration_ms: float
    critical: bool
    has_children: bool
    error: bool


@dataclass(frozen=True, slots=True)
class MapStep:
    """One step of the transaction map."""

    kind: Literal["router", "plugin", "upstream", "log"]
    side: Literal["request", "upstream", "response", "log"]
    name: str
    phase: str
    duration_ms: float
    span_id: str | None = None
    status: int | None = None
    error: bool = False
    slowest: bool = False


@dataclass(frozen=True, slots=True)
class TraceMetrics:
    """The critical latency figures of a request."""

    total_ms: float | None
    gateway_ms: float | None
    upstream_ms: float | None
    ttfb_ms: float | None
    dns_ms: float | None
    connect_ms: float | None
    tls_ms: float | None
    status_code: int | None
    request_bytes: int | None
    response_bytes: int | None
    tries: int
    error_type: str | None


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """Summary view: metrics plus the transaction map, in request order."""

    trace_id: str
    root_name: str
    metrics: TraceMetrics
    steps: list[MapStep] = field(default_factory=list)


def _duration(span: SpanPublic) -> float:
    return max(0.0, (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6)


def _gateway_root(spans: Sequence[SpanPublic]) -> SpanPublic | None:
    for span in spans:
        if span.kind == "SERVER" and span.service_name == GATEWAY:
            return span
    return None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _sum(spans: Sequence[SpanPublic], name: str) -> float | None:
    found = [_duration(s) for s in spans if s.name == name]
    return round(sum(found), 3) if found else None


def summarize(trace_id: str, spans: Sequence[SpanPublic]) -> TraceSummary:
    """Metrics and the transaction map of one traced request."""
    root = _gateway_root(spans)
    attributes = root.attributes if root is not None else {}
    tries = [s for s in spans if s.name == "gateway.upstream"]
    final_try = max(tries, key=lambda s: s.start_time_unix_nano) if tries else None
    ttfb = [
        s
        for s in spans
        if s.name == "gateway.upstream.ttfb"
        and final_try is not None
        and s.parent_span_id == final_try.span_id
    ]
    status = attributes.get("http.response.status_code")
    metrics = TraceMetrics(
        total_ms=_number(attributes.get("gateway.latency.total_ms")),
        gateway_ms=_number(attributes.get("gateway.latency.gateway_ms")),
        upstream_ms=_number(attributes.get("gateway.latency.upstream_ms")),
        ttfb_ms=round(_duration(ttfb[0]), 3) if ttfb else None,
        dns_ms=_sum(spans, "gateway.dns"),
        connect_ms=_sum(spans, "gateway.upstream.connect"),
        tls_ms=_sum(spans, "gateway.upstream.tls"),
        status_code=int(status) if isinstance(status, int) else None,
        request_bytes=_int(attributes.get("http.request.body.size")),
        response_bytes=_int(attributes.get("http.response.body.size")),
        tries=len(tries),
        error_type=str(attributes["error.type"]) if "error.type" in attributes else None,
    )
    return TraceSummary(
        trace_id=trace_id,
        root_name=root.name if root is not None else "",
        metrics=metrics,
        steps=_mark_slowest(_steps(spans)),
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _steps(spans: Sequence[SpanPublic]) -> list[MapStep]:
    ordered = sorted(spans, key=lambda s: s.start_time_unix_nano)
    steps: list[MapStep] = []
    for span in ordered:
        if span.service_name != GATEWAY:
            continue
        if span.name == "gateway.router":
            steps.append(
                MapStep("router", "request", "router", "access", _duration(span), span.span_id)
            )
        elif span.name.startswith("gateway.access.plugin."):
            steps.append(_plugin_step(span, "request", "access"))
        elif span.name == "gateway.balancer":
            status = next(
                (
                    s.attributes.get("http.response.status_code")
                    for s in reversed(ordered)
                    if s.name == "gateway.upstream" and s.parent_span_id == span.span_id
                ),
                None,
            )
            steps.append(
                MapStep(
                    "upstream",
                    "upstream",
                    str(span.attributes.get("gateway.upstream.name", "upstream")),
                    "balancer",
                    _duration(span),
                    span.span_id,
                    status=status if isinstance(status, int) else None,
                    error=span.status.code == "ERROR"
                    or any(
                        s.status.code == "ERROR"
                        for s in ordered
                        if s.name == "gateway.upstream" and s.parent_span_id == span.span_id
                    ),
                )
            )
        elif span.name.startswith("gateway.header_filter.plugin."):
            steps.append(_plugin_step(span, "response", "header_filter"))
        elif span.name.startswith("gateway.body_filter.plugin."):
            steps.append(_plugin_step(span, "response", "body_filter"))
        elif span.name.startswith("gateway.log.plugin."):
            steps.append(_plugin_step(span, "log", "log"))
    return steps


def _plugin_step(
    span: SpanPublic, side: Literal["request", "response", "log"], phase: str
) -> MapStep:
    name = str(span.attributes.get("gateway.plugin.name", span.name.rsplit(".", 1)[-1]))
    status = span.attributes.get("http.response.status_code")
    return MapStep(
        "log" if side == "log" else "plugin",
        side,
        name,
        phase,
        _duration(span),
        span.span_id,
        status=status if isinstance(status, int) else None,
        error=span.status.code == "ERROR",
    )


def _mark_slowest(steps: list[MapStep]) -> list[MapStep]:
    if not steps:
        return steps
    slowest = max(range(len(steps)), key=lambda i: steps[i].duration_ms)
    return [replace(step, slowest=index == slowest) for index, step in enumerate(steps)]


def critical_path(spans: Sequence[SpanPublic]) -> set[str]:
    """Span IDs on the critical path (jaeger-ui's algorithm).

    Walking back from the end of a span, the child that finished last before the cursor was
    what the span waited for; it is critical, and so is what it waited for, recursively.
    """
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[SpanPublic]] = defaultdict(list)
    roots = []
    for span in spans:
        if span.parent_span_id and span.parent_span_id in by_id:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    critical: set[str] = set()

    def walk(span: SpanPublic, bound: int) -> None:
        critical.add(span.span_id)
        cursor = min(span.end_time_unix_nano, bound)
        for child in sorted(
            children[span.span_id], key=lambda c: c.end_time_unix_nano, reverse=True
        ):
            if child.start_time_unix_nano >= cursor:
                continue
            walk(child, cursor)
            cursor = child.start_time_unix_nano
            if cursor <= span.start_time_unix_nano:
                break

    for root in roots:
        walk(root, root.end_time_unix_nano)
    return critical


def waterfall(spans: Sequence[SpanPublic]) -> list[WaterfallRow]:
    """Rows in tree order (children by start time) on one shared time axis."""
    if not spans:
        return []
    start = min(s.start_time_unix_nano for s in spans)
    end = max(s.end_time_unix_nano for s in spans)
    total = max(end - start, 1)
    by_id = {s.span_id: s for s in spans}
    children: dict[str | None, list[SpanPublic]] = defaultdict(list)
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in by_id else None
        children[parent].append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s.start_time_unix_nano, s.end_time_unix_nano))
    critical = critical_path(spans)
    rows: list[WaterfallRow] = []
    stack: list[tuple[SpanPublic, int]] = [(s, 0) for s in reversed(children[None])]
    while stack:
        span, depth = stack.pop()
        rows.append(
            WaterfallRow(
                span_id=span.span_id,
                parent_span_id=span.parent_span_id,
                name=span.name,
                service_name=span.service_name,
                depth=depth,
                offset_pct=round(100 * (span.start_time_unix_nano - start) / total, 4),
                width_pct=round(
                    100 * max(span.end_time_unix_nano - span.start_time_unix_nano, 0) / total, 4
                ),
                start_ms=round((span.start_time_unix_nano - start) / 1e6, 3),
                duration_ms=round(_duration(span), 3),
                critical=span.span_id in critical,
                has_children=bool(children.get(span.span_id)),
                error=span.status.code == "ERROR",
            )
        )
        stack.extend((child, depth + 1) for child in reversed(children.get(span.span_id, [])))
    return rows


@dataclass(frozen=True, slots=True)
class TraceLatency:
    """What the latency histogram needs of one trace row."""

    duration_ms: float
    status_code: int | None
    error: bool


@dataclass(frozen=True, slots=True)
class LatencyBucket:
    """Traces with ``low_ms <= duration < high_ms``, by outcome."""

    low_ms: float
    high_ms: float
    ok: int  # below 400
    client_error: int  # 4xx
    server_error: int  # 5xx, or no response at all

    @property
    def count(self) -> int:
        """Every trace in the bucket."""
        return self.ok + self.client_error + self.server_error


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """A session's latency distribution: equal-width buckets and percentiles."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    buckets: list[LatencyBucket] = field(default_factory=list)


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at least ``raw`` (axis labels stay round)."""
    exponent = math.floor(math.log10(raw))
    for mantissa in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = mantissa * 10.0**exponent
        if step >= raw * (1 - 1e-9):
            return round(step, 12)
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def _percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _outcome(trace: TraceLatency) -> Literal["ok", "client_error", "server_error"]:
    if trace.error or trace.status_code is None or trace.status_code >= 500:
        return "server_error"
    return "client_error" if trace.status_code >= 400 else "ok"


def latency_histogram(traces: Sequence[TraceLatency], *, max_buckets: int = 30) -> LatencyHistogram:
    """Durations in equal buckets of a round width from 0 to the slowest trace.

    At most ``max_buckets`` buckets; each splits its traces by outcome (ok, 4xx, 5xx/failed).
    """
    if not traces:
        return LatencyHistogram(0, None, None, None, None)
    durations = sorted(max(0.0, float(t.duration_ms)) for t in traces)
    slowest = durations[-1]
    step = _nice_step(slowest / max_buckets) if slowest > 0 else 1.0
    width = max(1, math.ceil(slowest / step - 1e-9))
    counts = [{"ok": 0, "client_error": 0, "server_error": 0} for _ in range(width)]
    for trace in traces:
        # The last bucket includes its upper bound: the slowest trace.
        index = min(width - 1, math.floor(max(0.0, trace.duration_ms) / step))
        counts[index][_outcome(trace)] += 1
    buckets = [
        LatencyBucket(
            low_ms=round(index * step, 9),
            high_ms=round((index + 1) * step, 9),
            ok=bucket["ok"],
            client_error=bucket["client_error"],
            server_error=bucket["server_error"],
        )
        for index, bucket in enumerate(counts)
    ]
    return LatencyHistogram(
        count=len(durations),
        p50_ms=_percentile(durations, 0.50),
        p95_ms=_percentile(durations, 0.95),
        p99_ms=_percentile(durations, 0.99),
        max_ms=slowest,
        buckets=buckets,
    )
