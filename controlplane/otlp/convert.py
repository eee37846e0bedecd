"""OTLP ``ResourceSpans`` ⇄ plain span records (what the ``spans`` table stores)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "SpanRecord",
    "any_value",
    "attributes_dict",
    "span_records",
]

SpanRecord = dict[str, Any]


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP AnyValue as a JSON-able Python value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes_dict(attributes: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """OTLP attributes as a dict."""
    return {kv.key: any_value(kv.value) for kv in attributes}


def span_records(resource_spans: Iterable[trace_pb2.ResourceSpans]) -> Iterator[SpanRecord]:
    """Flatten OTLP ResourceSpans into span records (IDs as lower-case hex)."""
    for rs in resource_spans:
        resource = attributes_dict(rs.resource.attributes)
        service_name = str(resource.get("service.name", ""))
        node_id = resource.get("gateway.node.id")
        for ss in rs.scope_spans:
            scope = {"name": ss.scope.name, "version": ss.scope.version}
            for span in ss.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    continue  # invalid IDs per the spec: such spans cannot be joined
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "name": span.name,
                    "kind": int(span.kind),
                    "start_time_ns": int(span.start_time_unix_nano),
                    "end_time_ns": int(span.end_time_unix_nano),
                    "status_code": int(span.status.code),
                    "status_message": span.status.message,
                    "service_name": service_name,
                    "node_id": str(node_id) if node_id is not None else None,
                    "attributes": attributes_dict(span.attributes),
                    "events": [
                        {
                            "name": event.name,
                            "time_unix_nano": int(event.time_unix_nano),
                            "attributes": attributes_dict(event.attributes),
                        }
                        for event in span.events
                    ],
                    "resource": resource,
                    "scope": scope,
                }
