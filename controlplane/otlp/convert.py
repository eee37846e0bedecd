"""OTLP ``ResourceSpans`` to rows of the ``spans`` table, fast.

Ingest throughput is bound by this conversion, so attributes go straight from protobuf to JSON
text (C string escaping, no intermediate dicts); only request root spans, whose attributes
fill the trace list, are also decoded into a dict.

:func:`encoded_span_rows` does the same from serialized ResourceSpans with the C extension
``_rows.c`` (~10x faster: no protobuf objects); :func:`span_rows` is its reference and fallback.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _quote
from typing import Any

from google.protobuf.message import DecodeError, EncodeError
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_c_rows: Callable[..., tuple[list[tuple[Any, ...]], dict[str, int], list[Any]]] | None
try:
    from controlplane.otlp._rows import rows as _c_rows
except ImportError:  # built without its C extension (ACTIVETRACE_PURE_PYTHON=1)
    _c_rows = None

__all__ = [
    "SPAN_COLUMNS",
    "RequestRoot",
    "SpanRows",
    "any_value",
    "attributes_dict",
    "attributes_json",
    "encoded_span_rows",
    "message_span_rows",
    "only_traces",
    "span_rows",
]

GATEWAY_SERVICE_NAME = "activetrace-dataplane"
_SERVER = trace_pb2.Span.SPAN_KIND_SERVER

# The order of the tuples span_rows() builds.
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time_ns",
    "end_time_ns",
    "status_code",
    "status_message",
    "service_name",
    "node_id",
    "attributes",
    "events",
    "resource",
    "scope",
)


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
        return value.double_value if math.isfinite(value.double_value) else None
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


# Same text as attributes_json for a dict from attributes_dict (compact, not ASCII-escaped;
# non-finite floats are already None there).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _text(value: str) -> str:
    # PostgreSQL's JSON types refuse \u0000; a NUL in an attribute must not fail the batch.
    return str(_quote(value.replace("\x00", "\ufffd") if "\x00" in value else value))


def _value_json(value: common_pb2.AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        number = value.double_value
        return repr(number) if math.isfinite(number) else "null"
    if kind == "array_value":
        return "[" + ",".join(_value_json(v) for v in value.array_value.values) + "]"
    if kind == "kvlist_value":
        return attributes_json(value.kvlist_value.values)
    if kind == "bytes_value":
        return f'"{value.bytes_value.hex()}"'
    return "null"


def attributes_json(attributes: Sequence[common_pb2.KeyValue]) -> str:
    """OTLP attributes as JSON object text (same content as ``json.dumps(attributes_dict())``)."""
    if not attributes:
        return "{}"
    return "{" + ",".join(f"{_text(kv.key)}:{_value_json(kv.value)}" for kv in attributes) + "}"


def _events_json(events: Sequence[trace_pb2.Span.Event]) -> str:
    if not events:
        return "[]"
    return (
        "["
        + ",".join(
            f'{{"name":{_text(e.name)},"time_unix_nano":{e.time_unix_nano},'
            f'"attributes":{attributes_json(e.attributes)}}}'
            for e in events
        )
        + "]"
    )


@dataclass(frozen=True, slots=True)
class RequestRoot:
    """The SERVER span a data plane node records for a request: it becomes a trace row."""

    trace_id: str
    node_id: str
    start_time_ns: int
    end_time_ns: int
    error: bool
    attributes: dict[str, Any]


@dataclass(slots=True)
class SpanRows:
    """Rows ready for the ``spans`` table, spans per trace, and the request roots."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    per_trace: Counter[str] = field(default_factory=Counter)
    roots: list[RequestRoot] = field(default_factory=list)

    def only(self, trace_ids: set[str]) -> SpanRows:
        """The rows of the given traces."""
        kept = SpanRows(
            rows=[r for r in self.rows if r[0] in trace_ids],
            roots=[r for r in self.roots if r.trace_id in trace_ids],
        )
        kept.per_trace.update({t: c for t, c in self.per_trace.items() if t in trace_ids})
        return kept


def _resource_facts(resource: resource_pb2.Resource) -> tuple[str, str | None, str, bool]:
    """A resource's service name, node ID, attributes as JSON, and whether it is a node's."""
    values = attributes_dict(resource.attributes)
    service_name = str(values.get("service.name", ""))
    node = values.get("gateway.node.id")
    node_id = str(node) if node is not None else None
    return (
        service_name,
        node_id,
        attributes_json(resource.attributes),
        service_name == GATEWAY_SERVICE_NAME,
    )


def _encoded_resource_facts(resource: bytes) -> tuple[str, str | None, str, bool]:
    try:
        return _resource_facts(resource_pb2.Resource.FromString(resource))
    except DecodeError as exc:
        raise ValueError(f"malformed OTLP span batch: its resource: {exc}") from exc


def encoded_span_rows(resource_spans: Sequence[bytes]) -> SpanRows:
    """:func:`span_rows` of serialized ``ResourceSpans``; ``ValueError`` when one is malformed."""
    if _c_rows is None:
        try:
            return span_rows([trace_pb2.ResourceSpans.FromString(rs) for rs in resource_spans])
        except DecodeError as exc:
            raise ValueError(f"malformed OTLP span batch: {exc}") from exc
    rows, per_trace, roots = _c_rows(resource_spans, _encoded_resource_facts, _dumps)
    return SpanRows(rows, Counter(per_trace), [RequestRoot(*root) for root in roots])


def message_span_rows(resource_spans: Sequence[trace_pb2.ResourceSpans]) -> SpanRows:
    """:func:`span_rows` of protobuf messages (the OTLP receiver's), through the C conversion:
    serializing them again costs less than reading their fields from Python. Text the C path
    refuses (a lone surrogate from a JSON export) takes :func:`span_rows`."""
    if _c_rows is not None:
        try:
            return encoded_span_rows([rs.SerializeToString() for rs in resource_spans])
        except (ValueError, EncodeError):
            pass
    return span_rows(resource_spans)


def span_rows(resource_spans: Iterable[trace_pb2.ResourceSpans]) -> SpanRows:
    """Flatten OTLP ResourceSpans into ``spans`` rows (IDs as lower-case hex).

    Spans with invalid IDs (wrong length) are skipped: they could not be joined to a trace.
    """
    out = SpanRows()
    rows, per_trace = out.rows, out.per_trace
    for rs in resource_spans:
        service_name, node_id, resource_json, gateway = _resource_facts(rs.resource)
        for ss in rs.scope_spans:
            scope_json = f'{{"name":{_text(ss.scope.name)},"version":{_text(ss.scope.version)}}}'
            for span in ss.spans:
                raw_trace, raw_span = span.trace_id, span.span_id
                if len(raw_trace) != 16 or len(raw_span) != 8:
                    continue
                trace_id = raw_trace.hex()
                status = span.status
                root: dict[str, Any] | None = None
                if gateway and span.kind == _SERVER:
                    # A request root's attributes are needed as a dict for its trace row; its
                    # JSON text then comes from the dict (json's C encoder) rather than a second
                    # pass over the protobuf, whose field access dominates conversion.
                    root = attributes_dict(span.attributes)
                    attributes_text = _dumps(root)
                    if "\\u0000" in attributes_text:  # PostgreSQL refuses it: the NUL-safe path
                        attributes_text = attributes_json(span.attributes)
                else:
                    attributes_text = attributes_json(span.attributes)
                rows.append(
                    (
                        trace_id,
                        raw_span.hex(),
                        span.parent_span_id.hex() or None,
                        span.name,
                        span.kind,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        status.code,
                        status.message,
                        service_name,
                        node_id,
                        attributes_text,
                        _events_json(span.events),
                        resource_json,
                        scope_json,
                    )
                )
                per_trace[trace_id] += 1
                if root is not None:
                    out.roots.append(
                        RequestRoot(
                            trace_id=trace_id,
                            node_id=node_id or "",
                            start_time_ns=span.start_time_unix_nano,
                            end_time_ns=span.end_time_unix_nano,
                            error=status.code == trace_pb2.Status.STATUS_CODE_ERROR
                            or "error.type" in root,
                            attributes=root,
                        )
                    )
    return out


def only_traces(
    resource_spans: Iterable[trace_pb2.ResourceSpans], trace_ids: set[str]
) -> list[trace_pb2.ResourceSpans]:
    """The spans of the given traces (hex IDs), keeping their resources and scopes."""
    out = []
    for rs in resource_spans:
        kept_rs = trace_pb2.ResourceSpans(resource=rs.resource, schema_url=rs.schema_url)
        for ss in rs.scope_spans:
            spans = [s for s in ss.spans if s.trace_id.hex() in trace_ids]
            if spans:
                kept_rs.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url, spans=spans)
        if kept_rs.scope_spans:
            out.append(kept_rs)
    return out
