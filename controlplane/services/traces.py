"""Reading traces: a session's trace list with filters, and one trace's spans."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import SpanRow, TraceRow, TracingSessionRow
from controlplane.errors import Invalid, NotFound
from controlplane.schemas import (
    Page,
    SpanEventPublic,
    SpanPublic,
    SpanStatusPublic,
    TraceDetail,
    TracePublic,
)

__all__ = [
    "TraceFilters",
    "get_trace",
    "list_traces",
    "require_session",
    "session_span_chunks",
    "span_public",
    "trace_spans",
]

_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")
_STATUS_CLASS = re.compile(r"^([1-5])xx$")


@dataclass(frozen=True, slots=True)
class TraceFilters:
    """Filters of a session's trace list (all optional)."""

    node_id: str | None = None
    method: str | None = None
    status_code: str | None = None  # "503" or "5xx"
    min_duration_ms: float | None = None
    path: str | None = None  # prefix
    error: bool | None = None


def _apply_filters(query: Select[Any], filters: TraceFilters) -> Select[Any]:
    if filters.node_id is not None:
        query = query.where(TraceRow.node_id == filters.node_id)
    if filters.method is not None:
        query = query.where(TraceRow.method == filters.method.upper())
    if filters.status_code is not None:
        query = query.where(*_status_condition(filters.status_code))
    if filters.min_duration_ms is not None:
        query = query.where(TraceRow.duration_ms >= filters.min_duration_ms)
    if filters.path is not None:
        query = query.where(TraceRow.path.startswith(filters.path, autoescape=True))
    if filters.error is not None:
        query = query.where(TraceRow.error.is_(filters.error))
    return query


def _status_condition(value: str) -> list[Any]:
    match = _STATUS_CLASS.match(value.lower())
    if match:
        low = int(match.group(1)) * 100
        return [TraceRow.status_code >= low, TraceRow.status_code < low + 100]
    if value.isdigit() and 100 <= int(value) <= 599:
        return [TraceRow.status_code == int(value)]
    raise Invalid.at(
        ["query", "status_code"], "expected a status code like 503 or a class like 5xx"
    )


async def list_traces(
    db: AsyncSession,
    session_id: str,
    *,
    filters: TraceFilters,
    sort: Literal["time", "duration"] = "time",
    limit: int = 100,
    after: str | None = None,
) -> Page[TracePublic]:
    """A session's traces, newest (or slowest) first."""
    await require_session(db, session_id)
    key = TraceRow.start_time_ns if sort == "time" else TraceRow.duration_ms
    query = _apply_filters(select(TraceRow).where(TraceRow.session_id == session_id), filters)
    if after is not None:
        query = query.where(tuple_(key, TraceRow.trace_id) < _decode_cursor(after))
    rows = list(
        await db.scalars(query.order_by(key.desc(), TraceRow.trace_id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = None
    if more:
        last = rows[-1]
        cursor = _encode_cursor(
            last.start_time_ns if sort == "time" else last.duration_ms, last.trace_id
        )
    return Page[TracePublic](items=[_trace_public(r) for r in rows], next_cursor=cursor)


def _encode_cursor(key: float, trace_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key, trace_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        key, trace_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(key, int | float) or not isinstance(trace_id, str):
            raise ValueError(cursor)
        return key, trace_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Invalid.at(["query", "after"], "malformed cursor") from None


def _trace_public(row: TraceRow) -> TracePublic:
    return TracePublic(
        trace_id=row.trace_id,
        session_id=row.session_id,
        node_id=row.node_id,
        start_time=datetime.fromtimestamp(row.start_time_ns / 1e9, UTC),
        start_time_unix_nano=row.start_time_ns,
        duration_ms=row.duration_ms,
        method=row.method,
        path=row.path,
        status_code=row.status_code,
        service=row.service_name,
        route=row.route_name,
        span_count=row.span_count,
        error=row.error,
    )


def span_public(row: SpanRow) -> SpanPublic:
    """A stored span as the API shows it."""
    return SpanPublic(
        trace_id=row.trace_id,
        span_id=row.span_id,
        parent_span_id=row.parent_span_id,
        name=row.name,
        kind=_KINDS[row.kind] if 0 <= row.kind < len(_KINDS) else "UNSPECIFIED",
        start_time_unix_nano=row.start_time_ns,
        end_time_unix_nano=row.end_time_ns,
        duration_ms=(row.end_time_ns - row.start_time_ns) / 1e6,
        status=SpanStatusPublic(
            code=_STATUS[row.status_code] if 0 <= row.status_code < 3 else "UNSET",
            message=row.status_message,
        ),
        service_name=row.service_name,
        node_id=row.node_id,
        attributes=row.attributes,
        events=[SpanEventPublic(**e) for e in row.events],
    )


async def get_trace(db: AsyncSession, trace_id: str) -> TraceDetail:
    """All spans of a trace (gateway and upstream services), in start order."""
    trace_id = trace_id.lower()
    rows = list(
        await db.scalars(
            select(TraceRow).where(TraceRow.trace_id == trace_id).order_by(TraceRow.session_id)
        )
    )
    if not rows:
        raise NotFound(f"trace {trace_id!r} not found")
    spans = await db.scalars(
        select(SpanRow)
        .where(SpanRow.trace_id == trace_id)
        .order_by(SpanRow.start_time_ns, SpanRow.span_id)
    )
    return TraceDetail(
        trace_id=trace_id,
        session_id=rows[0].session_id,
        session_ids=[r.session_id for r in rows],
        node_id=rows[0].node_id,
        spans=[span_public(s) for s in spans],
    )


async def trace_spans(db: AsyncSession, trace_id: str) -> list[SpanRow]:
    """The stored spans of one trace (404 when the trace is unknown)."""
    trace_id = trace_id.lower()
    rows = list(
        await db.scalars(
            select(SpanRow)
            .where(SpanRow.trace_id == trace_id)
            .order_by(SpanRow.start_time_ns, SpanRow.span_id)
        )
    )
    if not rows:
        raise NotFound(f"trace {trace_id!r} not found")
    return rows


async def session_span_chunks(
    db: AsyncSession, session_id: str, *, traces_per_chunk: int = 200
) -> AsyncIterator[tuple[list[SpanRow], int]]:
    """A session's spans, a chunk of traces at a time (oldest first), with the trace count.

    Keyset pagination keeps memory flat however large the session is.
    """
    last: tuple[int, str] | None = None
    while True:
        query = select(TraceRow.start_time_ns, TraceRow.trace_id).where(
            TraceRow.session_id == session_id
        )
        if last is not None:
            query = query.where(tuple_(TraceRow.start_time_ns, TraceRow.trace_id) > last)
        page = (
            await db.execute(
                query.order_by(TraceRow.start_time_ns, TraceRow.trace_id).limit(traces_per_chunk)
            )
        ).all()
        if not page:
            return
        last = (page[-1][0], page[-1][1])
        spans = list(
            await db.scalars(
                select(SpanRow)
                .where(SpanRow.trace_id.in_([t for _, t in page]))
                .order_by(SpanRow.trace_id, SpanRow.start_time_ns, SpanRow.span_id)
            )
        )
        yield spans, len(page)


async def require_session(db: AsyncSession, session_id: str) -> TracingSessionRow:
    """The session row, or 404."""
    row = await db.get(TracingSessionRow, session_id)
    if row is None:
        raise NotFound(f"tracing session {session_id!r} not found")
    return row
