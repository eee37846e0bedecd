"""Span ingest: idempotent per (trace_id, span_id), trace rows per keeping session."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from sqlalchemy import func, select

from controlplane.db.engine import Database
from controlplane.db.models import SpanRow, TraceRow
from controlplane.otlp.codec import to_any_value
from controlplane.services.ingest import ingest_batch
from protos.activetrace.cluster.v1 import cluster_pb2 as pb
from tests.controlplane.otlp.traced import active_session_row

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def _kv(key: str, value: str | int) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=to_any_value(value))


def _batch(
    batch_id: str, sessions: list[str], trace: int, *, with_root: bool = True, extra: int = 2
) -> pb.SpanBatch:
    trace_id = trace.to_bytes(16, "big")
    spans = []
    if with_root:
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=(1).to_bytes(8, "big"),
                name="GET /demo",
                kind=trace_pb2.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=1_000_000_000,
                end_time_unix_nano=1_250_000_000,
                attributes=[
                    _kv("http.request.method", "GET"),
                    _kv("url.path", "/demo/x"),
                    _kv("http.response.status_code", 503),
                    _kv("gateway.route.name", "demo"),
                ],
                status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR),
            )
        )
    for index in range(extra):
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=(100 + index + (0 if with_root else 50)).to_bytes(8, "big"),
                parent_span_id=(1).to_bytes(8, "big"),
                name="gateway.router",
                kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=1_000_000_000,
                end_time_unix_nano=1_000_100_000,
            )
        )
    resource = resource_pb2.Resource(
        attributes=[_kv("service.name", "activetrace-dataplane"), _kv("gateway.node.id", "dp-1")]
    )
    resource_spans = trace_pb2.ResourceSpans(
        resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)]
    )
    return pb.SpanBatch(batch_id=batch_id, session_ids=sessions, resource_spans=[resource_spans])


async def _session(db: Database, session_id: str) -> None:
    async with db.session() as s:
        s.add(active_session_row(session_id, NOW))
        await s.commit()


async def test_resent_batch_is_stored_once(db: Database) -> None:
    await _session(db, "s1")
    async with db.session() as s:
        first = await ingest_batch(s, _batch("b1", ["s1"], 7))
        again = await ingest_batch(s, _batch("b1", ["s1"], 7))
        assert (first.received, first.stored) == (3, 3)
        assert (again.received, again.stored, again.duplicates) == (3, 0, 3)
        assert await s.scalar(select(func.count()).select_from(SpanRow)) == 3
        row = await s.scalar(select(TraceRow))
        assert row is not None
        assert (row.node_id, row.method, row.path, row.status_code) == (
            "dp-1",
            "GET",
            "/demo/x",
            503,
        )
        assert row.duration_ms == 250.0
        assert row.span_count == 3
        assert row.error is True
        assert row.route_name == "demo"


async def test_a_trace_kept_by_two_sessions_has_two_rows_one_set_of_spans(db: Database) -> None:
    await _session(db, "s1")
    await _session(db, "s2")
    async with db.session() as s:
        await ingest_batch(s, _batch("b1", ["s1", "s2"], 9))
        rows = list(await s.scalars(select(TraceRow).order_by(TraceRow.session_id)))
        assert [r.session_id for r in rows] == ["s1", "s2"]
        assert await s.scalar(select(func.count()).select_from(SpanRow)) == 3


async def test_late_spans_update_the_span_count(db: Database) -> None:
    await _session(db, "s1")
    async with db.session() as s:
        await ingest_batch(s, _batch("b1", ["s1"], 5, extra=1))
        await ingest_batch(s, _batch("b2", ["s1"], 5, with_root=False, extra=2))
        row = await s.scalar(select(TraceRow))
        assert row is not None
        assert row.span_count == 4


async def test_batch_for_a_deleted_session_is_dropped(db: Database) -> None:
    async with db.session() as s:
        result = await ingest_batch(s, _batch("b1", ["gone"], 3))
        assert result.stored == 0
        assert await s.scalar(select(func.count()).select_from(SpanRow)) == 0
