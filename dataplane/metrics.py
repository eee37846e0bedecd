"""The node's own telemetry, accumulated with plain ints on the request path and exposed in
Prometheus format (via prometheus_client) only when scraped."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from dataplane.node import Node

__all__ = ["LATENCY_BUCKETS_MS", "NodeCollector", "RequestMetrics", "render"]

LATENCY_BUCKETS_MS = (
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    50.0,
    100.0,
    250.0,
    500.0,
    1000.0,
    2500.0,
    5000.0,
    10000.0,
)


class _RouteStats:
    __slots__ = ("buckets", "by_class", "count", "sum_ms")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.by_class = [0] * 6  # index = status // 100
        self.count = 0
        self.sum_ms = 0.0


class RequestMetrics:
    """Requests and latency per route; observing costs a dict lookup and a bisect."""

    def __init__(self) -> None:
        self.routes: dict[str, _RouteStats] = {}

    def observe(self, route: str, status: int, latency_ms: float) -> None:
        """Count one finished request."""
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = _RouteStats()
        stats.buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        stats.by_class[min(max(status // 100, 0), 5)] += 1
        stats.count += 1
        stats.sum_ms += latency_ms


class NodeCollector(Collector):
    """Turns a node's counters into metric families at scrape time."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        """Every metric of the node."""
        node = self.node
        requests = CounterMetricFamily(
            "activetrace_dp_requests",
            "Requests proxied, by route and status class",
            labels=["route", "status_class"],
        )
        latency = HistogramMetricFamily(
            "activetrace_dp_request_duration_seconds", "Request latency by route", labels=["route"]
        )
        for route, stats in sorted(node.proxy.metrics.routes.items()):
            for klass, count in enumerate(stats.by_class):
                if count:
                    requests.add_metric([route, f"{klass}xx"], count)
            cumulative, buckets = 0, []
            for bound, count in zip(
                (*LATENCY_BUCKETS_MS, float("inf")), stats.buckets, strict=True
            ):
                cumulative += count
                buckets.append((str(bound / 1000) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric([route], buckets, stats.sum_ms / 1000)
        yield requests
        yield latency
        yield _counter(
            "activetrace_dp_traced_requests",
            "Requests kept by a tracing session",
            node.tracer.traced,
        )
        yield _gauge(
            "activetrace_dp_spans_queued",
            "Spans waiting to be acknowledged by the CP",
            node.export.queued,
        )
        yield _counter(
            "activetrace_dp_spans_dropped",
            "Spans dropped because the buffer was full",
            node.export.dropped,
        )
        yield _counter(
            "activetrace_dp_spans_exported", "Spans acknowledged by the CP", node.export.acked_spans
        )
        yield _counter(
            "activetrace_dp_stream_reconnects",
            "Reconnects to the control plane",
            node.cluster.reconnects,
        )
        yield _gauge("activetrace_dp_config_version", "Config version in use", node.config_version)
        yield _gauge(
            "activetrace_dp_sessions_active",
            "Tracing sessions running",
            len(node.tracer.sessions.sessions),
        )
        yield _gauge(
            "activetrace_dp_cluster_connected",
            "1 when connected to the CP",
            int(node.cluster.connected.is_set()),
        )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def render(node: Node) -> bytes:
    """The Prometheus text exposition of ``node``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node))
    # The standard python_gc_* and process_* families every Python exporter serves: the
    # collector's work and the process's CPU and memory, read when scraped.
    GCCollector(registry=registry)
    ProcessCollector(registry=registry)
    return generate_latest(registry)
