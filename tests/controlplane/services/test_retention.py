"""Retention deletes expired sessions with their traces, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from controlplane.db.engine import Database
from controlplane.db.models import SessionTarget, SpanRow, TraceRow, TracingSessionRow
from controlplane.services.retention import purge_expired

CREATED = datetime(2026, 11, 1, tzinfo=UTC)


async def _session(
    db: Database, session_id: str, created: datetime, trace_ids: list[str], *, spans: bool = True
) -> None:
    async with db.session() as s:
        s.add(
            TracingSessionRow(
                id=session_id,
                status="completed",
                max_samples=1,
                duration_secs=1,
                created_at=created,
                ends_at=created,
                expires_at=created + timedelta(days=7),
            )
        )
        await s.flush()
        s.add(SessionTarget(session_id=session_id, node_id="dp-1"))
        for trace_id in trace_ids:
            s.add(
                TraceRow(session_id=session_id, trace_id=trace_id, start_time_ns=1, duration_ms=1.0)
            )
            if spans:
                s.add(
                    SpanRow(
                        trace_id=trace_id,
                        span_id="a" * 16,
                        name="x",
                        kind=2,
                        start_time_ns=1,
                        end_time_ns=2,
                    )
                )
        await s.commit()


async def _counts(db: Database) -> tuple[int, int, int, int]:
    async with db.session() as s:
        return (
            await s.scalar(select(func.count()).select_from(TracingSessionRow)) or 0,
            await s.scalar(select(func.count()).select_from(SessionTarget)) or 0,
            await s.scalar(select(func.count()).select_from(TraceRow)) or 0,
            await s.scalar(select(func.count()).select_from(SpanRow)) or 0,
        )


async def test_purge_deletes_only_expired_sessions_in_batches(db: Database) -> None:
    for index in range(5):
        await _session(db, f"old-{index}", CREATED, [f"{index:032x}"])
    await _session(db, "new", CREATED + timedelta(days=5), ["f" * 32])
    now = CREATED + timedelta(days=7, seconds=1)
    assert await purge_expired(db, now=now, batch_size=2) == 5
    assert await _counts(db) == (1, 1, 1, 1)
    assert await purge_expired(db, now=now) == 0


async def test_spans_shared_with_a_live_session_are_kept(db: Database) -> None:
    await _session(db, "old", CREATED, ["e" * 32])
    await _session(db, "new", CREATED + timedelta(days=5), ["e" * 32], spans=False)
    await purge_expired(db, now=CREATED + timedelta(days=8))
    assert await _counts(db) == (1, 1, 1, 1)
