"""Storing spans: idempotent on (trace_id, span_id), one trace row per keeping session."""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.cluster.messages import EncodedSpanBatch
from controlplane.db.models import TraceRow, TracingSessionRow
from controlplane.otlp.convert import (
    SPAN_COLUMNS,
    RequestRoot,
    SpanRows,
    encoded_span_rows,
    span_rows,
)
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = [
    "IngestResult",
    "add_span_counts",
    "batch_rows",
    "ingest_batch",
    "ingest_rows",
    "store_spans",
]


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


async def store_spans(db: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> Counter[str]:
    """Insert ``spans`` rows (see :func:`span_rows`), ignoring ones already stored.

    Returns how many spans were new, per trace. The hot path of ingest: PostgreSQL gets a
    binary COPY into a temporary table and one ``INSERT ... ON CONFLICT DO NOTHING``; SQLite
    an ``INSERT OR IGNORE`` executemany.
    """
    if not rows:
        return Counter()
    connection = await db.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name == "postgresql":
        return await _copy_postgresql(raw, rows)
    return await _insert_sqlite(raw, rows)


_PG_INSERT = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) "
    f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans_incoming "
    "ON CONFLICT (trace_id, span_id) DO NOTHING RETURNING trace_id"
)
# Connections that already have the temporary staging table.
_STAGED: weakref.WeakSet[Any] = weakref.WeakSet()


async def _copy_postgresql(conn: Any, rows: Sequence[tuple[Any, ...]]) -> Counter[str]:
    # Binary COPY into a per-connection staging table, then one set-based insert that skips
    # spans already stored (idempotent resends).
    if conn not in _STAGED:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS spans_incoming "
            "(LIKE spans INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        _STAGED.add(conn)
    await conn.copy_records_to_table("spans_incoming", records=rows, columns=SPAN_COLUMNS)
    return Counter(record[0] for record in await conn.fetch(_PG_INSERT))


async def _insert_sqlite(conn: Any, rows: Sequence[tuple[Any, ...]]) -> Counter[str]:
    trace_ids = sorted({row[0] for row in rows})
    placeholders = ", ".join("?" for _ in trace_ids)
    cursor = await conn.execute(
        f"SELECT trace_id, span_id FROM spans WHERE trace_id IN ({placeholders})", trace_ids
    )
    known = {(t, s) for t, s in await cursor.fetchall()}
    await cursor.close()
    new: Counter[str] = Counter()
    for row in rows:
        key = (row[0], row[1])
        if key not in known:
            known.add(key)
            new[row[0]] += 1
    placeholders = ", ".join("?" for _ in SPAN_COLUMNS)
    await conn.executemany(
        f"INSERT OR IGNORE INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({placeholders})", rows
    )
    return new


async def add_span_counts(db: AsyncSession, added: Counter[str]) -> None:
    """Spans that arrived after their trace row (late plugin I/O, upstream services' spans)."""
    if added:
        traces = cast(Table, TraceRow.__table__)
        # Core (not ORM) update, an executemany in trace_id order: concurrent ingests lock
        # rows in the same order and cannot deadlock.
        await db.execute(
            update(traces)
            .where(traces.c.trace_id == bindparam("t"))
            .values(span_count=traces.c.span_count + bindparam("n")),
            [{"t": trace_id, "n": count} for trace_id, count in sorted(added.items())],
        )


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


def batch_rows(batch: pb.SpanBatch | EncodedSpanBatch) -> SpanRows:
    """A node's batch as rows; ``ValueError`` when its spans cannot be read."""
    if isinstance(batch, EncodedSpanBatch):
        return encoded_span_rows(batch.resource_spans)
    return span_rows(batch.resource_spans)


async def ingest_batch(db: AsyncSession, batch: pb.SpanBatch | EncodedSpanBatch) -> IngestResult:
    """Store a node's span batch and the trace rows of the sessions that kept it; commits."""
    return await ingest_rows(db, batch.session_ids, batch_rows(batch))


async def ingest_rows(
    db: AsyncSession, session_ids: Sequence[str], converted: SpanRows
) -> IngestResult:
    """Store a batch's rows and the trace rows of the sessions that kept it; commits."""
    received = len(converted.rows)
    sessions = list(
        await db.scalars(select(TracingSessionRow.id).where(TracingSessionRow.id.in_(session_ids)))
    )
    if not sessions:  # every session was deleted while the batch was in flight
        return IngestResult(received, 0, sessions=0)
    added = await store_spans(db, converted.rows)
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
    await add_span_counts(db, Counter({t: n for t, n in added.items() if t not in rooted}))
    await db.commit()
    return IngestResult(received, added.total(), sessions=len(sessions))
