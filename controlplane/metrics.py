"""The control plane's own Prometheus metrics (one registry per process, no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ControlPlaneMetrics"]


class ControlPlaneMetrics:
    """Counters the cluster endpoint, the OTLP receiver and background tasks update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.nodes_connected = Gauge(
            "activetrace_cp_nodes_connected",
            "Nodes with a live stream to this CP",
            registry=self.registry,
        )
        self.sessions = Gauge(
            "activetrace_cp_sessions",
            "Tracing sessions by status",
            ["status"],
            registry=self.registry,
        )
        self.spans_ingested = Counter(
            "activetrace_cp_spans_ingested", "Spans stored", ["source"], registry=self.registry
        )
        self.spans_deduplicated = Counter(
            "activetrace_cp_spans_deduplicated",
            "Spans received again (resent batches) and not stored twice",
            ["source"],
            registry=self.registry,
        )
        self.spans_dropped = Counter(
            "activetrace_cp_spans_dropped",
            "Spans not stored: not part of a traced request, or their session was deleted",
            ["source"],
            registry=self.registry,
        )
        self.malformed_batches = Counter(
            "activetrace_cp_malformed_span_batches",
            "Span batches from nodes that could not be read (acknowledged, not stored)",
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "activetrace_cp_ingest_duration_seconds",
            "Time to store one span batch or OTLP export",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.forward_sent = Counter(
            "activetrace_cp_forward_spans_sent",
            "Spans forwarded to the external OTLP endpoint",
            registry=self.registry,
        )
        self.forward_dropped = Counter(
            "activetrace_cp_forward_spans_dropped",
            "Spans not forwarded: queue full, the endpoint kept failing, or unreadable",
            ["reason"],
            registry=self.registry,
        )
        self.db_errors = Counter(
            "activetrace_cp_db_errors",
            "Database operations that failed",
            ["operation"],
            registry=self.registry,
        )
