"""Storing spans: idempotent on (trace_id, span_id), one trace row per keeping session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import SpanRow, TraceRow, TracingSessionRow
from controlplane.otlp.convert import SpanRecord, span_records
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = ["GATEWAY_SERVICE_NAME", "IngestResult", "ingest_batch", "store_spans"]

GATEWAY_SERVICE_NAME = "activetrace-dataplane"
_SPAN_KIND_SERVER = 2
_STATUS_ERROR = 2


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to a batch: spans received and spans newly stored."""

    received: int
    stored: int
    sessions: int = 1  # how many of the batch's sessions still exist

    @property
    def duplicates(self) -> int:
        """Spans that were already stored (a resent batch)."""
        return self.received - self.stored


def _insert(db: AsyncSession, model: type[Any]) -> Any:
    dialect = db.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def store_spans(db: AsyncSession, records: Sequence[SpanRecord]) -> int:
    """Insert spans, ignoring ones already stored; returns how many were new."""
    if not records:
        return 0
    statement = _insert(db, SpanRow).on_conflict_do_nothing(index_elements=["trace_id", "span_id"])
    stored = 0
    for start in range(0, len(records), 500):
        result = await db.execute(
            statement.returning(SpanRow.span_id), records[start : start + 500]
        )
        stored += len(result.all())
    return stored


def _trace_row(session_id: str, root: SpanRecord, span_count: int) -> dict[str, Any]:
    attrs = root["attributes"]
    status = attrs.get("http.response.status_code")
    return {
        "session_id": session_id,
        "trace_id": root["trace_id"],
        "node_id": root["node_id"] or "",
        "start_time_ns": root["start_time_ns"],
        "duration_ms": (root["end_time_ns"] - root["start_time_ns"]) / 1e6,
        "method": str(attrs.get("http.request.method", ""))[:16],
        "path": str(attrs.get("url.path", "")),
        "status_code": int(status) if isinstance(status, int) else None,
        "service_id": attrs.get("gateway.service.id"),
        "service_name": attrs.get("gateway.service.name"),
        "route_id": attrs.get("gateway.route.id"),
        "route_name": attrs.get("gateway.route.name"),
        "span_count": span_count,
        "error": root["status_code"] == _STATUS_ERROR or "error.type" in attrs,
    }


def _is_request_root(record: SpanRecord) -> bool:
    return bool(
        record["kind"] == _SPAN_KIND_SERVER and record["service_name"] == GATEWAY_SERVICE_NAME
    )


async def ingest_batch(db: AsyncSession, batch: pb.SpanBatch) -> IngestResult:
    """Store a node's span batch and the trace rows of the sessions that kept it; commits."""
    records = list(span_records(batch.resource_spans))
    sessions = list(
        await db.scalars(
            select(TracingSessionRow.id).where(TracingSessionRow.id.in_(batch.session_ids))
        )
    )
    if not sessions:  # every session was deleted while the batch was in flight
        return IngestResult(len(records), 0, sessions=0)
    stored = await store_spans(db, records)
    counts = Counter(r["trace_id"] for r in records)
    roots = [r for r in records if _is_request_root(r)]
    if roots:
        rows = [_trace_row(s, root, counts[root["trace_id"]]) for s in sessions for root in roots]
        await db.execute(
            _insert(db, TraceRow).on_conflict_do_nothing(index_elements=["session_id", "trace_id"]),
            rows,
        )
    late = [t for t in counts if t not in {r["trace_id"] for r in roots}]
    if late:
        await refresh_span_counts(db, late)
    await db.commit()
    return IngestResult(len(records), stored, sessions=len(sessions))


async def refresh_span_counts(db: AsyncSession, trace_ids: Sequence[str]) -> None:
    """Recount spans of traces that received spans after their trace row was written."""
    count = (
        select(func.count())
        .select_from(SpanRow)
        .where(SpanRow.trace_id == TraceRow.trace_id)
        .scalar_subquery()
    )
    await db.execute(
        update(TraceRow).where(TraceRow.trace_id.in_(trace_ids)).values(span_count=count)
    )
