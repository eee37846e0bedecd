"""OTLP encodings: stored spans to ``ResourceSpans``, and OTLP/JSON in and out.

OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters: trace and
span IDs are hex strings, not base64. Enums are integers and 64-bit integers are strings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from controlplane.db.models import SpanRow

__all__ = [
    "export_request",
    "parse_json_request",
    "request_to_json",
    "resource_spans",
    "to_any_value",
]

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def to_any_value(value: Any) -> common_pb2.AnyValue:
    """A stored (JSON) attribute value as an OTLP AnyValue."""
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(values=[to_any_value(v) for v in value])
        )
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=_key_values(value)))
    return common_pb2.AnyValue()


def _key_values(attributes: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=to_any_value(v)) for k, v in attributes.items()]


def _span(row: SpanRow) -> trace_pb2.Span:
    span = trace_pb2.Span(
        trace_id=bytes.fromhex(row.trace_id),
        span_id=bytes.fromhex(row.span_id),
        parent_span_id=bytes.fromhex(row.parent_span_id) if row.parent_span_id else b"",
        name=row.name,
        kind=row.kind,  # type: ignore[arg-type]
        start_time_unix_nano=row.start_time_ns,
        end_time_unix_nano=row.end_time_ns,
        attributes=_key_values(row.attributes),
        status=trace_pb2.Status(code=row.status_code, message=row.status_message),  # type: ignore[arg-type]
    )
    for event in row.events:
        span.events.append(
            trace_pb2.Span.Event(
                name=event.get("name", ""),
                time_unix_nano=int(event.get("time_unix_nano", 0)),
                attributes=_key_values(event.get("attributes") or {}),
            )
        )
    return span


def resource_spans(rows: Iterable[SpanRow]) -> list[trace_pb2.ResourceSpans]:
    """Group stored spans back into ResourceSpans / ScopeSpans, keeping first-seen order."""
    groups: dict[str, tuple[trace_pb2.ResourceSpans, dict[str, trace_pb2.ScopeSpans]]] = {}
    for row in rows:
        resource_key = json.dumps(row.resource, sort_keys=True)
        if resource_key not in groups:
            rs = trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=_key_values(row.resource))
            )
            groups[resource_key] = (rs, {})
        rs, scopes = groups[resource_key]
        scope_key = json.dumps(row.scope, sort_keys=True)
        if scope_key not in scopes:
            scope = rs.scope_spans.add()
            scope.scope.name = str(row.scope.get("name", ""))
            scope.scope.version = str(row.scope.get("version", ""))
            scopes[scope_key] = scope
        scopes[scope_key].spans.append(_span(row))
    return [rs for rs, _ in groups.values()]


def export_request(rows: Sequence[SpanRow]) -> trace_service_pb2.ExportTraceServiceRequest:
    """An ExportTraceServiceRequest holding ``rows``."""
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=resource_spans(rows))


def _ids(node: Any, convert: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = convert(value)
            else:
                _ids(value, convert)
    elif isinstance(node, list):
        for item in node:
            _ids(item, convert)


def request_to_json(request: trace_service_pb2.ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON of a request (hex IDs, integer enums, 64-bit integers as strings)."""
    body: dict[str, Any] = json_format.MessageToDict(request, use_integers_for_enums=True)
    _ids(body, lambda v: base64.b64decode(v).hex())
    return body


def parse_json_request(raw: bytes) -> trace_service_pb2.ExportTraceServiceRequest:
    """Parse an OTLP/JSON body; raises ValueError (or json_format.ParseError) when malformed."""
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("an OTLP/JSON body is an object with resourceSpans")
    _ids(body, lambda v: base64.b64encode(bytes.fromhex(v)).decode())
    request = trace_service_pb2.ExportTraceServiceRequest()
    json_format.ParseDict(body, request, ignore_unknown_fields=True)
    return request
