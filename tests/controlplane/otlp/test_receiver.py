"""The OTLP receiver, spoken to by the official OpenTelemetry SDK exporters (gRPC and HTTP)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from sqlalchemy import select

from controlplane.app import create_app
from controlplane.db.models import SpanRow, TraceRow
from controlplane.otlp.codec import export_request, parse_json_request, request_to_json
from controlplane.otlp.grpc_service import OtlpTraceService
from controlplane.otlp.receiver import TraceReceiver
from controlplane.state import ControlPlane
from tests.conftest import free_port, serve_asgi
from tests.controlplane.otlp.traced import store_traced_request

TRACED = 0x4BF92F3577B34DA6A3CE929D0E0E4736
UNTRACED = 0x11111111111111111111111111111111
GATEWAY_SPAN = 0x00F067AA0BA902B7


@dataclass
class Receiver:
    http_url: str
    grpc_target: str
    cp: ControlPlane


@pytest.fixture
async def receiver(control_plane: ControlPlane) -> AsyncIterator[Receiver]:
    """The control plane's OTLP endpoints on real ports, with one traced request stored."""
    await store_traced_request(control_plane, f"{TRACED:032x}")
    grpc_port = free_port()
    grpc_server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        OtlpTraceService(control_plane.otlp_receiver), grpc_server
    )
    grpc_server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await grpc_server.start()
    try:
        async with serve_asgi(create_app(control_plane)) as url:
            yield Receiver(url, f"127.0.0.1:{grpc_port}", control_plane)
    finally:
        await grpc_server.stop(None)


def _span(trace_id: int, span_id: int, name: str, parent: int | None = None) -> ReadableSpan:
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))
    parent_context = (
        SpanContext(trace_id, parent, is_remote=True, trace_flags=TraceFlags(1)) if parent else None
    )
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent_context,
        resource=Resource({"service.name": "orders-service"}),
        attributes={"http.route": "/orders", "app.items": 3},
        kind=SpanKind.SERVER,
        start_time=1_000,
        end_time=2_000,
    )


async def _stored(cp: ControlPlane) -> dict[str, SpanRow]:
    async with cp.db.session() as db:
        return {row.span_id: row for row in await db.scalars(select(SpanRow))}


async def _export(exporter: SpanExporter, spans: list[ReadableSpan]) -> SpanExportResult:
    try:
        return await asyncio.to_thread(exporter.export, spans)
    finally:
        await asyncio.to_thread(exporter.shutdown)


SPANS = [
    _span(TRACED, 0xA1, "GET /orders", parent=GATEWAY_SPAN),
    _span(UNTRACED, 0xB1, "GET /health"),
]


async def test_sdk_http_exporter_spans_of_traced_requests_are_kept(receiver: Receiver) -> None:
    exporter = HttpExporter(endpoint=receiver.http_url + "/v1/traces", compression=Compression.Gzip)
    assert await _export(exporter, SPANS) == SpanExportResult.SUCCESS
    stored = await _stored(receiver.cp)
    assert list(stored) == [f"{0xA1:016x}"]
    row = stored[f"{0xA1:016x}"]
    assert row.service_name == "orders-service"
    assert row.parent_span_id == f"{GATEWAY_SPAN:016x}"
    assert row.attributes == {"http.route": "/orders", "app.items": 3}
    assert receiver.cp.otlp_receiver.rejected == 1


async def test_sdk_grpc_exporter(receiver: Receiver) -> None:
    exporter = GrpcExporter(endpoint=receiver.grpc_target, insecure=True)
    assert await _export(exporter, SPANS) == SpanExportResult.SUCCESS
    assert list(await _stored(receiver.cp)) == [f"{0xA1:016x}"]


async def test_otlp_json_and_partial_success(receiver: Receiver) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(
        trace_id=UNTRACED.to_bytes(16, "big"), span_id=(5).to_bytes(8, "big"), name="x"
    )
    body = json.dumps(request_to_json(request)).encode()
    async with httpx.AsyncClient() as client:
        response = await client.post(
            receiver.http_url + "/v1/traces",
            content=gzip.compress(body),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "1 spans do not belong to a request traced by activetrace",
        }
    }


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"\xff\xff", {"content-type": "application/x-protobuf"}, 422),
        (b"{not json", {"content-type": "application/json"}, 422),
        (b"x", {"content-type": "text/plain"}, 415),
        (b"x", {"content-type": "application/json", "content-encoding": "br"}, 415),
        (b"not gzip", {"content-type": "application/json", "content-encoding": "gzip"}, 422),
    ],
)
async def test_bad_bodies_are_clear_errors(
    receiver: Receiver, content: bytes, headers: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            receiver.http_url + "/v1/traces", content=content, headers=headers
        )
    assert response.status_code == status
    assert response.json()["message"]


async def test_overload_answers_503_with_retry_after(receiver: Receiver) -> None:
    receiver.cp.otlp_receiver.max_in_flight = 0
    async with httpx.AsyncClient() as client:
        response = await client.post(
            receiver.http_url + "/v1/traces",
            content=b"",
            headers={"content-type": "application/x-protobuf"},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_exported_otlp_survives_the_sdk_exporter_path(receiver: Receiver) -> None:
    """Our OTLP export, parsed back and re-sent by the SDK's exporter, loses nothing."""
    exporter = HttpExporter(endpoint=receiver.http_url + "/v1/traces")
    await _export(exporter, SPANS[:1])
    async with receiver.cp.db.session() as db:
        rows = list(await db.scalars(select(SpanRow)))
    exported = json.dumps(request_to_json(export_request(rows))).encode()
    parsed = parse_json_request(exported)
    spans = []
    for rs in parsed.resource_spans:
        resource = Resource({kv.key: kv.value.string_value for kv in rs.resource.attributes})
        for ss in rs.scope_spans:
            for span in ss.spans:
                spans.append(
                    ReadableSpan(
                        name=span.name,
                        context=SpanContext(
                            int.from_bytes(span.trace_id, "big"),
                            int.from_bytes(span.span_id, "big") + 1,
                            False,
                            TraceFlags(1),
                        ),
                        parent=SpanContext(
                            int.from_bytes(span.trace_id, "big"),
                            int.from_bytes(span.parent_span_id, "big"),
                            True,
                            TraceFlags(1),
                        ),
                        resource=resource,
                        attributes={
                            kv.key: (
                                kv.value.int_value
                                if kv.value.HasField("int_value")
                                else kv.value.string_value
                            )
                            for kv in span.attributes
                        },
                        kind=SpanKind(span.kind - 1),
                        start_time=span.start_time_unix_nano,
                        end_time=span.end_time_unix_nano,
                    )
                )
    assert (
        await _export(HttpExporter(endpoint=receiver.http_url + "/v1/traces"), spans)
        == SpanExportResult.SUCCESS
    )
    stored = await _stored(receiver.cp)
    original, resent = stored[f"{0xA1:016x}"], stored[f"{0xA2:016x}"]
    for field in (
        "trace_id",
        "parent_span_id",
        "name",
        "kind",
        "start_time_ns",
        "end_time_ns",
        "attributes",
        "service_name",
    ):
        assert getattr(resent, field) == getattr(original, field), field


async def test_metrics_count_ingested_and_dropped_spans(receiver: Receiver) -> None:
    exporter = HttpExporter(endpoint=receiver.http_url + "/v1/traces")
    await _export(exporter, SPANS)
    async with httpx.AsyncClient() as client:
        text = (await client.get(receiver.http_url + "/metrics")).text
    assert 'activetrace_cp_spans_ingested_total{source="otlp"} 1.0' in text
    assert 'activetrace_cp_spans_dropped_total{source="otlp"} 1.0' in text
    assert 'activetrace_cp_sessions{status="active"} 1.0' in text
    assert "activetrace_cp_nodes_connected 0.0" in text


async def test_service_spans_that_arrive_before_the_gateway_join_late(receiver: Receiver) -> None:
    """A service exports before the node's batch lands: its spans wait, then join the trace."""
    cp = receiver.cp
    early = 0x22222222222222222222222222222222
    assert (
        await _export(
            HttpExporter(endpoint=receiver.http_url + "/v1/traces"),
            [_span(early, 0xC1, "GET /early", parent=GATEWAY_SPAN)],
        )
        == SpanExportResult.SUCCESS
    )
    assert f"{0xC1:016x}" not in await _stored(cp)
    assert await cp.otlp_receiver.join_late() == 0  # the trace is still unknown: keeps waiting
    async with cp.db.session() as db:
        db.add(TraceRow(session_id="s1", trace_id=f"{early:032x}", start_time_ns=1, duration_ms=1))
        await db.commit()
    assert await cp.otlp_receiver.join_late() == 1
    assert (await _stored(cp))[f"{0xC1:016x}"].name == "GET /early"
    assert cp.otlp_receiver.waiting_spans == 0


async def test_waiting_spans_expire_and_are_bounded(control_plane: ControlPlane) -> None:
    now = [100.0]
    receiver = TraceReceiver(
        control_plane.db,
        metrics=control_plane.metrics,
        late_join_secs=5,
        max_waiting_spans=2,
        clock=lambda: now[0],
    )
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for index in range(3):
        spans.add(
            trace_id=UNTRACED.to_bytes(16, "big"), span_id=(index + 1).to_bytes(8, "big"), name="x"
        )
    result = await receiver.export(request)
    assert result.rejected == 3
    assert receiver.waiting_spans == 0  # one export of 3 spans is over the bound of 2: dropped
    spans.pop()
    await receiver.export(request)
    assert receiver.waiting_spans == 2
    now[0] += 6
    assert await receiver.join_late() == 0
    assert receiver.waiting_spans == 0
