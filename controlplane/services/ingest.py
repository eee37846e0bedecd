"""Storing spans: idempotent on (trace_id, span_id), one trace row per keeping session."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import SpanRow, TraceRow, TracingSessionRow
from controlplane.otlp.convert import SPAN_COLUMNS, RequestRoot, span_rows
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = ["IngestResult", "ingest_batch", "refresh_span_counts", "store_spans"]


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


async def store_spans(db: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert ``spans`` rows (see :func:`span_rows`), ignoring ones already stored.

    Returns how many were new. The hot path of ingest: PostgreSQL gets a binary COPY into a
    temporary table and one ``INSERT ... ON CONFLICT DO NOTHING``; SQLite an
    ``INSERT OR IGNORE`` executemany.
    """
    if not rows:
        return 0
    connection = await db.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name == "postgresql":
        return await _copy_postgresql(raw, rows)
    return await _insert_sqlite(raw, rows)


_PG_INSERT = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) "
    f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans_incoming "
    "ON CONFLICT (trace_id, span_id) DO NOTHING"
)
# Connections that already have the temporary staging table.
_STAGED: weakref.WeakSet[Any] = weakref.WeakSet()


async def _copy_postgresql(conn: Any, rows: Sequence[tuple[Any, ...]]) -> int:
    # Binary COPY into a per-connection staging table, then one set-based insert that skips
    # spans already stored (idempotent resends).
    if conn not in _STAGED:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS spans_incoming "
            "(LIKE spans INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        _STAGED.add(conn)
    await conn.copy_records_to_table("spans_incoming", records=rows, columns=SPAN_COLUMNS)
    status = await conn.execute(_PG_INSERT)
    return int(status.rsplit(" ", 1)[-1])


async def _insert_sqlite(conn: Any, rows: Sequence[tuple[Any, ...]]) -> int:
    before = conn.total_changes
    placeholders = ", ".join("?" for _ in SPAN_COLUMNS)
    await conn.executemany(
        f"INSERT OR IGNORE INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({placeholders})", rows
    )
    return int(conn.total_changes - before)


def _trace_row(session_id: str, root: RequestRoot, span_count: int) -> dict[str, Any]:
    attrs = root.attributes
    status = attrs.get("http.response.status_code")
    return {
        "session_id": session_id,
        "trace_id": root.trace_id,
        "node_id": root.node_id,
        "start_time_ns": root.start_time_ns,
        "duration_ms": (root.end_time_ns - root.start_time_ns) / 1e6,
        "method": str(attrs.get("http.request.method", ""))[:16],
        "path": str(attrs.get("url.path", "")),
        "status_code": int(status) if isinstance(status, int) else None,
        "service_id": attrs.get("gateway.service.id"),
        "service_name": attrs.get("gateway.service.name"),
        "route_id": attrs.get("gateway.route.id"),
        "route_name": attrs.get("gateway.route.name"),
        "span_count": span_count,
        "error": root.error,
    }


async def ingest_batch(db: AsyncSession, batch: pb.SpanBatch) -> IngestResult:
    """Store a node's span batch and the trace rows of the sessions that kept it; commits."""
    converted = span_rows(batch.resource_spans)
    received = len(converted.rows)
    sessions = list(
        await db.scalars(
            select(TracingSessionRow.id).where(TracingSessionRow.id.in_(batch.session_ids))
        )
    )
    if not sessions:  # every session was deleted while the batch was in flight
        return IngestResult(received, 0, sessions=0)
    stored = await store_spans(db, converted.rows)
    if converted.roots:
        rows = [
            _trace_row(s, root, converted.per_trace[root.trace_id])
            for s in sessions
            for root in converted.roots
        ]
        await db.execute(
            _insert(db, TraceRow).on_conflict_do_nothing(index_elements=["session_id", "trace_id"]),
            rows,
        )
    rooted = {r.trace_id for r in converted.roots}
    late = [t for t in converted.per_trace if t not in rooted]
    if late:
        await refresh_span_counts(db, late)
    await db.commit()
    return IngestResult(received, stored, sessions=len(sessions))


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
