"""``/api/v1/traces``: one trace's spans."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import DbSession
from controlplane.schemas import ErrorBody, TraceDetail
from controlplane.services import traces

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/traces", tags=["traces"])


@router.get("/{trace_id}", response_model=TraceDetail, responses={404: {"model": ErrorBody}})
async def get_trace(db: DbSession, trace_id: str) -> TraceDetail:
    """Every span of the trace, gateway and upstream services, with session and node."""
    return await traces.get_trace(db, trace_id)
