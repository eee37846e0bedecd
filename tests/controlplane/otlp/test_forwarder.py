"""Forwarding stored spans to an external OTLP endpoint, over real HTTP and gRPC servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from starlette.requests import Request
from starlette.responses import Response

from controlplane.metrics import ControlPlaneMetrics
from controlplane.otlp.convert import only_traces
from controlplane.otlp.forwarder import OtlpForwarder
from controlplane.state import ControlPlane
from tests.conftest import free_port, serve_asgi
from tests.controlplane.otlp.traced import store_traced_request

TRACED = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
OTHER = bytes.fromhex("11111111111111111111111111111111")


def _resource_spans(trace_id: bytes, count: int) -> trace_pb2.ResourceSpans:
    rs = trace_pb2.ResourceSpans()
    rs.resource.attributes.add(key="service.name").value.string_value = "orders"
    scope = rs.scope_spans.add()
    for index in range(count):
        scope.spans.add(trace_id=trace_id, span_id=(index + 1).to_bytes(8, "big"), name="s")
    return rs


def _spans(requests: list[trace_service_pb2.ExportTraceServiceRequest]) -> int:
    return sum(len(ss.spans) for r in requests for rs in r.resource_spans for ss in rs.scope_spans)


@dataclass
class HttpCollector:
    """An OTLP/HTTP endpoint answering the queued statuses first, then 200."""

    statuses: list[int] = field(default_factory=list)
    received: list[trace_service_pb2.ExportTraceServiceRequest] = field(default_factory=list)
    calls: int = 0

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        request = Request(scope, receive)  # type: ignore[arg-type]
        self.calls += 1
        body = await request.body()
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.received.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
        headers = {"retry-after": "0"} if status in (429, 503) else {}
        await Response(b"", status_code=status, headers=headers)(scope, receive, send)  # type: ignore[arg-type]


@pytest.fixture
async def http_collector() -> AsyncIterator[tuple[HttpCollector, str]]:
    collector = HttpCollector()
    async with serve_asgi(collector) as url:
        yield collector, url + "/v1/traces"


def _forwarder(endpoint: str, **kwargs: object) -> OtlpForwarder:
    return OtlpForwarder(
        endpoint,
        metrics=ControlPlaneMetrics(),
        initial_backoff=0.01,
        max_backoff=0.05,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_http_retries_retryable_statuses_then_delivers(
    http_collector: tuple[HttpCollector, str],
) -> None:
    collector, url = http_collector
    collector.statuses = [503, 429]
    forwarder = _forwarder(url)
    forwarder.submit([_resource_spans(TRACED, 3)])
    await forwarder.flush()
    await forwarder.aclose()
    assert collector.calls == 3
    assert _spans(collector.received) == 3
    assert (forwarder.sent_spans, forwarder.dropped_spans) == (3, 0)
    assert forwarder.metrics.forward_sent._value.get() == 3


async def test_http_non_retryable_and_exhausted_batches_are_dropped(
    http_collector: tuple[HttpCollector, str],
) -> None:
    collector, url = http_collector
    collector.statuses = [400, 503, 503]
    forwarder = _forwarder(url, max_attempts=2)
    forwarder.submit([_resource_spans(TRACED, 2)])
    await forwarder.flush()  # 400: dropped at once
    forwarder.submit([_resource_spans(TRACED, 5)])
    await forwarder.flush()  # 503 twice: dropped after the last attempt
    await forwarder.aclose()
    assert collector.calls == 3
    assert forwarder.dropped_spans == 7
    dropped = forwarder.metrics.forward_dropped.labels("export_failed")._value.get()
    assert dropped == 7


async def test_a_full_queue_drops_and_counts() -> None:
    forwarder = _forwarder("http://127.0.0.1:9/v1/traces", max_queued_spans=10)
    forwarder.submit([_resource_spans(TRACED, 6), _resource_spans(TRACED, 6)])
    assert (forwarder.queued_spans, forwarder.dropped_spans) == (6, 6)


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.unavailable = 1
        self.received: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,  # type: ignore[type-arg]
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        if self.unavailable:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        self.received.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_grpc_endpoint_with_a_retry() -> None:
    collector = _Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        forwarder = _forwarder(f"grpc://127.0.0.1:{port}")
        forwarder.submit([_resource_spans(TRACED, 4)])
        await forwarder.flush()
        await forwarder.aclose()
    finally:
        await server.stop(None)
    assert _spans(collector.received) == 4
    assert forwarder.sent_spans == 4


def test_only_traces_keeps_resources_and_scopes() -> None:
    mixed = _resource_spans(TRACED, 2)
    mixed.scope_spans[0].spans.add(trace_id=OTHER, span_id=b"\x00" * 7 + b"\x09", name="x")
    kept = only_traces([mixed, _resource_spans(OTHER, 1)], {TRACED.hex()})
    assert len(kept) == 1
    assert kept[0].resource == mixed.resource
    assert [s.trace_id for s in kept[0].scope_spans[0].spans] == [TRACED, TRACED]


async def test_the_receiver_forwards_only_spans_it_stored(
    control_plane: ControlPlane, http_collector: tuple[HttpCollector, str]
) -> None:
    collector, url = http_collector
    forwarder = _forwarder(url)
    control_plane.otlp_receiver.forward = forwarder.submit
    await store_traced_request(control_plane, TRACED.hex())
    request = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[_resource_spans(TRACED, 2), _resource_spans(OTHER, 3)]
    )
    result = await control_plane.otlp_receiver.export(request)
    assert (result.stored, result.rejected) == (2, 3)
    await forwarder.flush()
    await forwarder.aclose()
    assert _spans(collector.received) == 2
    assert {
        s.trace_id
        for r in collector.received
        for rs in r.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    } == {TRACED}
