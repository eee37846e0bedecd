"""``POST /v1/traces``: the OTLP/HTTP trace receiver (protobuf or JSON, optionally gzip)."""

from __future__ import annotations

import json
import zlib

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from controlplane.api.deps import ControlPlaneDep
from controlplane.errors import ApiError, Invalid, Unavailable
from controlplane.otlp.codec import parse_json_request
from controlplane.otlp.receiver import Overloaded

__all__ = ["router"]

router = APIRouter(tags=["OTLP receiver"])
PROTOBUF = "application/x-protobuf"
MAX_BODY_BYTES = 16 << 20


class ReceiverBusy(Unavailable):
    """The receiver is saturated (503, retry after a second)."""

    headers = {"retry-after": "1"}  # noqa: RUF012


class UnsupportedMediaType(ApiError):
    """Neither protobuf nor JSON (415)."""

    status_code = 415


def _decompress(raw: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise UnsupportedMediaType(f"unsupported content-encoding {encoding!r}; use gzip")
    inflater = zlib.decompressobj(wbits=31)
    try:
        body = inflater.decompress(raw, MAX_BODY_BYTES)
    except zlib.error as exc:
        raise Invalid.at(["body"], f"malformed gzip: {exc}") from None
    if inflater.unconsumed_tail:
        raise Invalid.at(["body"], f"decompressed body larger than {MAX_BODY_BYTES} bytes")
    return body


def _parse(body: bytes, content_type: str) -> trace_service_pb2.ExportTraceServiceRequest:
    if content_type.startswith(PROTOBUF):
        request = trace_service_pb2.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise Invalid.at(["body"], f"malformed protobuf: {exc}") from None
        return request
    if content_type.startswith("application/json"):
        try:
            return parse_json_request(body)
        except (ValueError, json_format.ParseError) as exc:
            raise Invalid.at(["body"], f"malformed OTLP/JSON: {exc}") from None
    raise UnsupportedMediaType("content-type must be application/x-protobuf or application/json")


@router.post(
    "/v1/traces",
    response_class=Response,
    responses={200: {"content": {PROTOBUF: {}, "application/json": {}}}},
)
async def receive_traces(request: Request, cp: ControlPlaneDep) -> Response:
    """Accept spans from services behind the gateway; partial success names what was dropped."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Invalid.at(["body"], f"body larger than {MAX_BODY_BYTES} bytes")
    content_type = request.headers.get("content-type", "")
    export = _parse(_decompress(raw, request.headers.get("content-encoding", "")), content_type)
    try:
        result = await cp.otlp_receiver.export(export)
    except Overloaded:
        raise ReceiverBusy("receiver overloaded; retry later") from None
    response = result.response()
    if content_type.startswith(PROTOBUF):
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    body = json_format.MessageToDict(response)
    return Response(json.dumps(body), media_type="application/json")
