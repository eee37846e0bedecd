"""Retention: sessions and their traces are deleted once older than the retention period."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import select

from controlplane.db.engine import Database
from controlplane.db.models import TracingSessionRow
from controlplane.services.sessions import delete_sessions_data

__all__ = ["purge_expired"]


async def purge_expired(db: Database, *, now: datetime, batch_size: int = 20) -> int:
    """Delete expired sessions, a small batch per transaction so the API never waits long.

    Returns how many sessions were deleted.
    """
    deleted = 0
    while True:
        async with db.session() as session:
            ids = list(
                await session.scalars(
                    select(TracingSessionRow.id)
                    .where(TracingSessionRow.expires_at <= now)
                    .order_by(TracingSessionRow.expires_at)
                    .limit(batch_size)
                )
            )
            if not ids:
                return deleted
            await delete_sessions_data(session, ids)
            await session.commit()
        deleted += len(ids)
        await asyncio.sleep(0)  # let API requests in between batches
