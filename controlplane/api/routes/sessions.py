"""``/api/v1/tracing-sessions``: create, list, stop and delete sessions; list their traces."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from controlplane.api.deps import ControlPlaneDep, DbSession
from controlplane.schemas import (
    ErrorBody,
    Page,
    TracePublic,
    TracingSessionCreate,
    TracingSessionPublic,
)
from controlplane.services import sessions, traces

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tracing-sessions", tags=["tracing sessions"])
_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


@router.post("", status_code=201, response_model=TracingSessionPublic, responses=_ERRORS)
async def create_session(
    cp: ControlPlaneDep, db: DbSession, body: TracingSessionCreate
) -> TracingSessionPublic:
    """Start tracing on the target nodes; the rule is validated by the nodes' own compiler."""
    return await sessions.create_session(
        db, cp.registry, body, now=cp.clock.now(), retention=cp.retention
    )


@router.get("", response_model=Page[TracingSessionPublic], responses=_ERRORS)
async def list_sessions(
    db: DbSession,
    status: Literal["pending", "active", "completed", "stopped", "expired"] | None = None,
    node_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: str | None = None,
) -> Page[TracingSessionPublic]:
    """Sessions, newest first; pass ``next_cursor`` as ``after`` for the next page."""
    return await sessions.list_sessions(
        db, status=status, node_id=node_id, limit=limit, after=after
    )


@router.get("/{session_id}", response_model=TracingSessionPublic, responses=_ERRORS)
async def get_session(db: DbSession, session_id: str) -> TracingSessionPublic:
    """One session with per-node progress."""
    return await sessions.get_session(db, session_id)


@router.post("/{session_id}/stop", response_model=TracingSessionPublic, responses=_ERRORS)
async def stop_session(cp: ControlPlaneDep, db: DbSession, session_id: str) -> TracingSessionPublic:
    """Stop tracing now; the traces stay."""
    return await sessions.stop_session(db, cp.registry, session_id, now=cp.clock.now())


@router.delete("/{session_id}", status_code=204, responses=_ERRORS)
async def delete_session(cp: ControlPlaneDep, db: DbSession, session_id: str) -> Response:
    """Stop the session and delete it with its traces."""
    await sessions.delete_session(db, cp.registry, session_id)
    return Response(status_code=204)


@router.get("/{session_id}/traces", response_model=Page[TracePublic], responses=_ERRORS)
async def list_traces(
    db: DbSession,
    session_id: str,
    node_id: str | None = None,
    method: str | None = None,
    status_code: Annotated[str | None, Query(description="e.g. 503 or 5xx")] = None,
    min_duration_ms: Annotated[float | None, Query(ge=0)] = None,
    path: Annotated[str | None, Query(description="path prefix")] = None,
    error: bool | None = None,
    sort: Literal["time", "duration"] = "time",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: str | None = None,
) -> Page[TracePublic]:
    """The session's traces, newest (or slowest) first."""
    filters = traces.TraceFilters(
        node_id=node_id,
        method=method,
        status_code=status_code,
        min_duration_ms=min_duration_ms,
        path=path,
        error=error,
    )
    return await traces.list_traces(
        db, session_id, filters=filters, sort=sort, limit=limit, after=after
    )
