"""FastAPI dependencies: the database session, the node registry, the clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.errors import Unavailable
from controlplane.state import ControlPlane

__all__ = ["ControlPlaneDep", "DbSession", "control_plane", "db_session"]


def control_plane(request: Request) -> ControlPlane:
    """The process's ControlPlane."""
    cp: ControlPlane = request.app.state.control_plane
    return cp


async def db_session(
    cp: Annotated[ControlPlane, Depends(control_plane)],
) -> AsyncIterator[AsyncSession]:
    """A database session for one request (503 until the database is migrated)."""
    if not cp.ready.is_set():
        raise Unavailable("the control plane is starting: the database is not reachable yet")
    async with cp.db.session() as session:
        yield session


ControlPlaneDep = Annotated[ControlPlane, Depends(control_plane)]
DbSession = Annotated[AsyncSession, Depends(db_session)]
