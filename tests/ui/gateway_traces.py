"""Traces shaped like a data plane node's (see SPANS.md), for feeding the viewer without one.

Every phase span of the catalogue is there, with the attributes the summary and the waterfall
read, plus the spans an upstream service exports over OTLP under the ``gateway.upstream`` try.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.trace.v1 import trace_pb2

from dataplane.tracing.otlp import encode_spans, resource
from dataplane.tracing.spans import (
    KIND_CLIENT,
    KIND_SERVER,
    Span,
    SpanEvent,
    new_trace_id,
    now_ns,
)

__all__ = ["XSS", "GatewayTrace", "gateway_trace"]

MS = 1_000_000
XSS = "<script>alert(1)</script>"
# (phase, plugin) in the order a node runs them, with how long each takes in ms.
REQUEST_PLUGINS = (("key-auth", 0.4), ("rate-limiting", 1.3))
RESPONSE_PLUGINS = (("cors", 0.08), ("response-transformer", 0.15))
LOG_PLUGINS = (("http-log", 0.6),)


@dataclass
class GatewayTrace:
    """One request's spans: the node's and the upstream service's."""

    trace_id: bytes
    node_id: str
    gateway: list[Span] = field(default_factory=list)
    service: list[Span] = field(default_factory=list)

    @property
    def hex_id(self) -> str:
        """The trace ID as the API shows it."""
        return self.trace_id.hex()

    def node_spans(self) -> trace_pb2.ResourceSpans:
        """The node's spans as it exports them."""
        node = resource(
            {
                "service.name": "activetrace-dataplane",
                "service.version": "0.1.0",
                "service.instance.id": self.node_id,
                "host.name": f"{self.node_id}.local",
                "gateway.node.id": self.node_id,
            }
        )
        return encode_spans(node, [(self.trace_id, self.gateway)], "0.1.0")

    def service_spans(self) -> trace_pb2.ResourceSpans:
        """The upstream service's spans, as its OTel SDK exports them."""
        service = resource({"service.name": "orders-service", "service.version": "2.4.1"})
        return encode_spans(service, [(self.trace_id, self.service)], "2.4.1")


class _Clock:
    """Lays spans out one after another from a start time (ms offsets)."""

    def __init__(self, start: int) -> None:
        self.start = start

    def at(self, offset_ms: float) -> int:
        return self.start + round(offset_ms * MS)


def _child(
    trace: list[Span],
    name: str,
    parent: Span,
    start_ns: int,
    end_ns: int,
    *,
    kind: int = 1,
    attributes: dict[str, Any] | None = None,
) -> Span:
    span = Span(name, parent.span_id, start_ns, kind, attributes or {})
    span.end(end_ns)
    trace.append(span)
    return span


def _phase(
    trace: list[Span],
    root: Span,
    clock: _Clock,
    phase: str,
    plugins: tuple[tuple[str, float], ...],
    start_ms: float,
) -> float:
    """A phase span with one child per plugin; returns when it ended (ms)."""
    end_ms = start_ms + sum(duration for _, duration in plugins) + 0.02
    span = _child(trace, f"gateway.{phase}", root, clock.at(start_ms), clock.at(end_ms))
    cursor = start_ms + 0.01
    for name, duration in plugins:
        plugin = _child(
            trace,
            f"gateway.{phase}.plugin.{name}",
            span,
            clock.at(cursor),
            clock.at(cursor + duration),
            attributes={"gateway.plugin.name": name, "gateway.plugin.id": f"plugin-{name}"},
        )
        if name == "http-log":
            _child(
                trace,
                "gateway.io.http",
                plugin,
                clock.at(cursor + 0.05),
                clock.at(cursor + duration - 0.05),
                kind=KIND_CLIENT,
                attributes={
                    "http.request.method": "POST",
                    "url.full": "http://logs.internal:9200/ingest",
                    "http.response.status_code": 204,
                },
            )
        cursor += duration
    return end_ms


def gateway_trace(
    node_id: str,
    session_id: str,
    *,
    method: str = "GET",
    path: str = "/demo/orders",
    status: int = 200,
    upstream_ms: float = 12.0,
    header_value: str = "checkout-web",
) -> GatewayTrace:
    """A complete traced request through every phase, ending now."""
    upstream_ms = max(upstream_ms, 2.0)
    total_ms = upstream_ms + 6.5
    clock = _Clock(now_ns() - round(total_ms * MS))
    trace = GatewayTrace(new_trace_id(), node_id)
    spans = trace.gateway
    request_bytes = 0 if method == "GET" else 128
    root = Span(
        f"{method} {path}",
        b"",
        clock.at(0),
        KIND_SERVER,
        {
            "http.request.method": method,
            "url.full": f"http://gateway.example:8000{path}?page=2",
            "url.path": path,
            "url.query": "page=2",
            "url.scheme": "http",
            "http.route": path,
            "http.response.status_code": status,
            "client.address": "10.1.2.3",
            "client.port": 53122,
            "server.address": "gateway.example",
            "server.port": 8000,
            "network.protocol.version": "1.1",
            "user_agent.original": "curl/8.5.0",
            "http.request.body.size": request_bytes,
            "http.response.body.size": 2345,
            "gateway.request.id": trace.hex_id[:16],
            "gateway.session.id": session_id,
            "gateway.service.id": "svc-demo",
            "gateway.service.name": "demo",
            "gateway.route.id": "route-orders",
            "gateway.route.name": "orders",
            "gateway.consumer.id": "consumer-web",
            "gateway.latency.total_ms": round(total_ms, 3),
            "gateway.latency.gateway_ms": round(total_ms - upstream_ms - 1.0, 3),
            "gateway.latency.upstream_ms": round(upstream_ms + 1.0, 3),
            "http.request.header.x-client-name": [header_value],
            "http.request.header.authorization": ["[REDACTED]"],
            "http.request.header.accept": ["application/json"],
            "http.response.header.content-type": ["application/json"],
            "http.response.header.x-ratelimit-remaining": ["41"],
        },
    )
    if request_bytes:
        root.attributes["gateway.request.body"] = '{"item": "<img src=x onerror=alert(1)>", "qty'
        root.attributes["gateway.request.body.truncated"] = True
    root.attributes["gateway.response.body"] = '{"orders": [{"id": 1, "status": "shipped"}]}'
    root.end(clock.at(total_ms))
    root.events = [
        # Log lines the node wrote while serving the request, kept on the root span.
        SpanEvent(
            "log",
            clock.at(0.3),
            {
                "log.severity": "INFO",
                "log.logger": "dataplane.plugins.key_auth",
                "log.message": "consumer web authenticated",
            },
        ),
        SpanEvent(
            "log",
            clock.at(2.0),
            {
                "log.severity": "WARNING",
                "log.logger": "dataplane.proxy",
                "log.message": f"upstream chosen for {header_value}",
            },
        ),
    ]
    spans.append(root)
    _child(
        spans,
        "gateway.router",
        root,
        clock.at(0.05),
        clock.at(0.12),
        attributes={"gateway.route.id": "route-orders", "gateway.router.cache_hit": True},
    )
    access_end = _phase(spans, root, clock, "access", REQUEST_PLUGINS, 0.15)
    upstream_start = access_end + 0.05
    upstream_end = upstream_start + upstream_ms + 1.0
    balancer = _child(
        spans,
        "gateway.balancer",
        root,
        clock.at(upstream_start),
        clock.at(upstream_end),
        attributes={"gateway.upstream.name": "demo", "gateway.balancer.tries": 1},
    )
    _child(
        spans,
        "gateway.dns",
        balancer,
        clock.at(upstream_start + 0.02),
        clock.at(upstream_start + 0.2),
        kind=KIND_CLIENT,
        attributes={"dns.question.name": "orders.internal", "gateway.dns.cache_hit": False},
    )
    attempt = _child(
        spans,
        "gateway.upstream",
        balancer,
        clock.at(upstream_start + 0.25),
        clock.at(upstream_end - 0.02),
        kind=KIND_CLIENT,
        attributes={
            "http.request.method": method,
            "url.full": f"http://orders.internal:9000{path}",
            "server.address": "orders.internal",
            "server.port": 9000,
            "network.peer.address": "10.0.0.7",
            "http.response.status_code": status,
            "http.request.resend_count": 0,
        },
    )
    if status >= 400:
        attempt.set_error(str(status))
    send_start = upstream_start + 0.7
    ttfb_end = send_start + 0.1 + upstream_ms
    _child(
        spans,
        "gateway.upstream.connect",
        attempt,
        clock.at(upstream_start + 0.27),
        clock.at(send_start - 0.01),
        attributes={"network.peer.address": "10.0.0.7", "gateway.connection.reused": False},
    )
    _child(
        spans,
        "gateway.upstream.send_request",
        attempt,
        clock.at(send_start),
        clock.at(send_start + 0.1),
    )
    ttfb = _child(
        spans, "gateway.upstream.ttfb", attempt, clock.at(send_start + 0.1), clock.at(ttfb_end)
    )
    _child(
        spans,
        "gateway.upstream.read_response",
        attempt,
        clock.at(ttfb_end),
        clock.at(upstream_end - 0.05),
        attributes={"http.response.body.size": 2345},
    )
    header_end = _phase(spans, root, clock, "header_filter", RESPONSE_PLUGINS, upstream_end + 0.02)
    _child(
        spans, "gateway.response.write", root, clock.at(header_end + 0.01), clock.at(total_ms - 1.0)
    )
    _phase(spans, root, clock, "log", LOG_PLUGINS, total_ms - 0.95)
    if status >= 500:
        root.set_error(str(status))

    # The upstream service continues the trace from the traceparent of the upstream try.
    handler = Span(
        f"{method} /orders",
        attempt.span_id,
        ttfb.start_ns + round(0.2 * MS),
        KIND_SERVER,
        {
            "http.request.method": method,
            "http.route": "/orders",
            "http.response.status_code": status,
        },
    )
    handler.end(ttfb.end_ns - round(0.2 * MS))
    query = Span(
        "SELECT orders",
        handler.span_id,
        handler.start_ns + round(0.3 * MS),
        KIND_CLIENT,
        {"db.system.name": "postgresql", "db.operation.name": "SELECT"},
    )
    query.end(handler.end_ns - round(0.5 * MS))
    if status >= 500:
        handler.set_error("db_timeout", "query timed out")
        handler.record_exception(TimeoutError("query timed out"), handler.end_ns - round(0.1 * MS))
    trace.service.extend([handler, query])
    return trace
