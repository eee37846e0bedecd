"""A control plane started with --forward-otlp-endpoint sends what it stores to a collector."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.conftest import sqlite_url
from tests.integration.conftest import launch_stack, running, wait_for


class Collector(ThreadingHTTPServer):
    """A minimal OTLP/HTTP collector: keeps the trace IDs and span names it receives."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[tuple[str, str]] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            self.server.spans += [
                (span.trace_id.hex(), span.name)
                for rs in request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_stored_spans_are_forwarded(
    collector: Collector, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"
    stack = launch_stack(
        sqlite_url(tmp_path),
        tmp_path,
        cp_args=["--forward-otlp-endpoint", endpoint],
    )
    with running(stack, request) as s:
        dp = s.start_node("dp-1")
        s.wait_connected("dp-1")
        session = s.start_session("dp-1", scope={"route": "demo"}, max_samples=1)
        assert httpx.get(dp.proxy + "/demo/hello", timeout=5).status_code == 200
        s.wait_session(session["id"], "completed")
        trace_id = s.ok("GET", f"/api/v1/tracing-sessions/{session['id']}/traces")["items"][0][
            "trace_id"
        ]

        def forwarded() -> set[str]:
            with collector.lock:
                return {name for tid, name in collector.spans if tid == trace_id}

        # The gateway's spans (cluster stream) and the demo upstream's (OTLP receiver) both go on.
        wait_for(lambda: "gateway.upstream" in forwarded(), "the gateway's spans forwarded")
        wait_for(
            lambda: any(name.startswith("GET /demo") for name in forwarded() - {"GET /demo"}),
            "the demo upstream's span forwarded",
        )
        metrics = httpx.get(s.api + "/metrics", timeout=5).text
        assert "activetrace_cp_forward_spans_sent_total" in metrics
