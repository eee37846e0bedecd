"""A traced request stored in the control plane, for the OTLP receiver and forwarder tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from controlplane.db.models import TraceRow, TracingSessionRow
from controlplane.state import ControlPlane

SESSION_ID = "s1"


def active_session_row(session_id: str, now: datetime) -> TracingSessionRow:
    """A session created at ``now`` that runs for a minute and is kept for 7 days."""
    return TracingSessionRow(
        id=session_id,
        status="active",
        max_samples=10,
        duration_secs=60,
        created_at=now,
        ends_at=now + timedelta(minutes=1),
        expires_at=now + timedelta(days=7),
    )


async def store_traced_request(cp: ControlPlane, trace_id: str) -> None:
    """An active session with one trace (``trace_id`` in hex) that service spans can join."""
    async with cp.db.session() as db:
        db.add(active_session_row(SESSION_ID, cp.clock.now()))
        await db.flush()
        db.add(TraceRow(session_id=SESSION_ID, trace_id=trace_id, start_time_ns=1, duration_ms=1.0))
        await db.commit()
