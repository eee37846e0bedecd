"""OTLP export of stored traces: one trace or a whole session, as OTLP/JSON or protobuf."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from controlplane.api.deps import ControlPlaneDep, DbSession
from controlplane.otlp.codec import export_request, request_to_json
from controlplane.schemas import ErrorBody
from controlplane.services import traces

__all__ = ["router", "wants_protobuf"]

router = APIRouter(tags=["OTLP export"])
PROTOBUF = "application/x-protobuf"
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/json": {}, PROTOBUF: {}}},
    404: {"model": ErrorBody},
}


def wants_protobuf(request: Request) -> bool:
    """Whether the client asked for OTLP protobuf rather than OTLP/JSON."""
    return PROTOBUF in request.headers.get("accept", "")


@router.get("/api/v1/traces/{trace_id}/otlp", responses=_RESPONSES, response_class=Response)
async def export_trace(request: Request, db: DbSession, trace_id: str) -> Response:
    """One trace as an OTLP ``ExportTraceServiceRequest``, importable into any OTel backend."""
    message = export_request(await traces.trace_spans(db, trace_id))
    filename = f"trace-{trace_id.lower()}"
    if wants_protobuf(request):
        return Response(
            message.SerializeToString(),
            media_type=PROTOBUF,
            headers={"content-disposition": f'attachment; filename="{filename}.pb"'},
        )
    return Response(
        json.dumps(request_to_json(message)),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{filename}.json"'},
    )


@router.get(
    "/api/v1/tracing-sessions/{session_id}/otlp", responses=_RESPONSES, response_class=Response
)
async def export_session(
    request: Request, cp: ControlPlaneDep, db: DbSession, session_id: str
) -> StreamingResponse:
    """Every trace of a session, streamed (memory stays flat for large sessions).

    Protobuf chunks are concatenated ``ExportTraceServiceRequest`` messages, which protobuf
    parses as one message whose ``resource_spans`` are the union.
    """
    await traces.require_session(db, session_id)
    protobuf = wants_protobuf(request)

    async def body() -> AsyncIterator[bytes]:
        async with cp.db.session() as stream_db:
            first = True
            if not protobuf:
                yield b'{"resourceSpans":['
            async for rows, _ in traces.session_span_chunks(stream_db, session_id):
                message = export_request(rows)
                if protobuf:
                    yield message.SerializeToString()
                    continue
                for item in request_to_json(message).get("resourceSpans", []):
                    yield (b"" if first else b",") + json.dumps(item).encode()
                    first = False
            if not protobuf:
                yield b"]}"

    suffix = "pb" if protobuf else "json"
    return StreamingResponse(
        body(),
        media_type=PROTOBUF if protobuf else "application/json",
        headers={"content-disposition": f'attachment; filename="session-{session_id}.{suffix}"'},
    )
