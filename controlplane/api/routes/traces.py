"""``/api/v1/traces``: one trace's spans, its summary and its waterfall."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import DbSession
from controlplane.schemas import ErrorBody, TraceDetail, TraceLogLine
from controlplane.services import traces
from controlplane.viewer.models import TraceSummary, WaterfallRow, summarize, waterfall

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/traces", tags=["traces"])
_NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody}}


@router.get("/{trace_id}", response_model=TraceDetail, responses=_NOT_FOUND)
async def get_trace(db: DbSession, trace_id: str) -> TraceDetail:
    """Every span of the trace, gateway and upstream services, with session and node."""
    return await traces.get_trace(db, trace_id)


@router.get("/{trace_id}/summary", response_model=TraceSummary, responses=_NOT_FOUND)
async def get_summary(db: DbSession, trace_id: str) -> TraceSummary:
    """Critical latency metrics and the transaction map (plugins per phase, upstream)."""
    detail = await traces.get_trace(db, trace_id)
    return summarize(detail.trace_id, detail.spans)


@router.get("/{trace_id}/waterfall", response_model=list[WaterfallRow], responses=_NOT_FOUND)
async def get_waterfall(db: DbSession, trace_id: str) -> list[WaterfallRow]:
    """The span tree as rows on a shared time axis, with the critical path marked."""
    detail = await traces.get_trace(db, trace_id)
    return waterfall(detail.spans)


@router.get("/{trace_id}/logs", response_model=list[TraceLogLine], responses=_NOT_FOUND)
async def get_logs(db: DbSession, trace_id: str) -> list[TraceLogLine]:
    """The node's log lines written while it served this request, in time order."""
    detail = await traces.get_trace(db, trace_id)
    lines = [
        TraceLogLine(
            time_unix_nano=event.time_unix_nano,
            level=str(event.attributes.get("log.severity", "")),
            logger=str(event.attributes.get("log.logger", "")),
            message=str(event.attributes.get("log.message", "")),
            node_id=span.node_id,
            span_id=span.span_id,
        )
        for span in detail.spans
        for event in span.events
        if event.name == "log"
    ]
    return sorted(lines, key=lambda line: line.time_unix_nano)
