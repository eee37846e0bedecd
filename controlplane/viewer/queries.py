"""What the viewer reads beyond the traces API: a session's latencies for its histogram."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import TraceRow
from controlplane.services.traces import require_session
from controlplane.viewer.models import TraceLatency

__all__ = ["MAX_HISTOGRAM_TRACES", "session_latencies"]

# Enough for a faithful distribution; a bound keeps a huge session from loading every row.
MAX_HISTOGRAM_TRACES = 100_000


async def session_latencies(db: AsyncSession, session_id: str) -> list[TraceLatency]:
    """Duration and outcome of a session's most recent traces (404 for an unknown session)."""
    await require_session(db, session_id)
    rows = await db.execute(
        select(TraceRow.duration_ms, TraceRow.status_code, TraceRow.error)
        .where(TraceRow.session_id == session_id)
        .order_by(TraceRow.start_time_ns.desc())
        .limit(MAX_HISTOGRAM_TRACES)
    )
    return [TraceLatency(duration, status, bool(error)) for duration, status, error in rows]
