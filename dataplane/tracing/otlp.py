"""OTLP protobuf built directly from plain spans (opentelemetry-proto messages, no SDK)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from dataplane.tracing import wire
from dataplane.tracing.spans import Span

__all__ = ["SCOPE_NAME", "encode_spans", "encode_spans_messages", "key_values", "resource"]

SCOPE_NAME = "activetrace.dataplane"


def _any_value(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, list | tuple):
        return common_pb2.AnyValue(
            array_value=common_pb2.ArrayValue(values=[_any_value(v) for v in value])
        )
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    return common_pb2.AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, Any]) -> list[common_pb2.KeyValue]:
    """Attributes as OTLP KeyValues."""
    return [common_pb2.KeyValue(key=k, value=_any_value(v)) for k, v in attributes.items()]


def resource(attributes: Mapping[str, Any]) -> resource_pb2.Resource:
    """The node's OTLP Resource."""
    return resource_pb2.Resource(attributes=key_values(attributes))


def _span(trace_id: bytes, span: Span) -> trace_pb2.Span:
    """One span as a message (the reference the wire encoder below is tested against)."""
    message = trace_pb2.Span(
        trace_id=trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_id,
        name=span.name,
        kind=span.kind,  # type: ignore[arg-type]
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns or span.start_ns,
        attributes=key_values(span.attributes),
    )
    encoded = getattr(span, "encoded_attributes", b"")
    if encoded:  # Span.attributes fields already written (the root's standard attributes)
        message.attributes.extend(trace_pb2.Span.FromString(encoded).attributes)
    if span.status_code:
        message.status.code = span.status_code  # type: ignore[assignment]
        message.status.message = span.status_message
    if span.events:
        message.events.extend(
            trace_pb2.Span.Event(
                name=e.name, time_unix_nano=e.time_ns, attributes=key_values(e.attributes)
            )
            for e in span.events
        )
    return message


def encode_spans_messages(
    node_resource: resource_pb2.Resource,
    traces: Iterable[tuple[bytes, Sequence[Span]]],
    scope_version: str,
) -> trace_pb2.ResourceSpans:
    """:func:`encode_spans` built from message objects: simple, and about 6x slower."""
    scope_spans = trace_pb2.ScopeSpans(
        scope=common_pb2.InstrumentationScope(name=SCOPE_NAME, version=scope_version)
    )
    scope_spans.spans.extend(_span(trace_id, s) for trace_id, spans in traces for s in spans)
    rs = trace_pb2.ResourceSpans(resource=node_resource)
    rs.scope_spans.append(scope_spans)
    return rs


def encode_spans(
    node_resource: resource_pb2.Resource,
    traces: Iterable[tuple[bytes, Sequence[Span]]],
    scope_version: str,
) -> trace_pb2.ResourceSpans:
    """One ResourceSpans holding the spans of several traces of this node.

    The spans are written in protobuf wire format by :mod:`dataplane.tracing.wire` (creating a
    message object per attribute is most of the cost otherwise) and parsed once, in C.
    """
    raw = wire.resource_spans(node_resource.SerializeToString(), SCOPE_NAME, scope_version, traces)
    return trace_pb2.ResourceSpans.FromString(raw)
