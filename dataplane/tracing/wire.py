"""OTLP spans written straight into protobuf wire format (trace/v1, common/v1 field numbers).

Only what the node records is covered: span IDs, name, kind, times, attributes (string, bool,
int, float, bytes and arrays of those), events and status. Field numbers are those of
opentelemetry-proto; ``tests/dataplane/tracing/test_wire.py`` checks the bytes against the
message-built encoding.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from dataplane.tracing.spans import Span

__all__ = [
    "ACCELERATED",
    "attribute_fields",
    "node_span_batch",
    "python_trace_spans",
    "resource_spans",
    "resource_spans_encoded",
    "trace_spans",
]

_c_trace_spans: Callable[[bytes, Sequence[Span]], bytes] | None
_c_attribute_fields: Callable[[tuple[str, ...], tuple[Any, ...]], bytes] | None
try:
    from dataplane.tracing._wire import attribute_fields as _c_attribute_fields
    from dataplane.tracing._wire import set_fallback
    from dataplane.tracing._wire import trace_spans as _c_trace_spans
except ImportError:  # not built (no compiler where the package was installed)
    _c_trace_spans = _c_attribute_fields = None

ACCELERATED: Final = _c_trace_spans is not None
"""Whether spans are encoded by the C extension."""

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack

# Tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
_RS_RESOURCE: Final = b"\x0a"  # ResourceSpans.resource = 1
_RS_SCOPE_SPANS: Final = b"\x12"  # ResourceSpans.scope_spans = 2
_SS_SCOPE: Final = b"\x0a"  # ScopeSpans.scope = 1
_SS_SPAN: Final = b"\x12"  # ScopeSpans.spans = 2
_SCOPE_NAME: Final = b"\x0a"  # InstrumentationScope.name = 1
_SCOPE_VERSION: Final = b"\x12"  # InstrumentationScope.version = 2
_SPAN_TRACE_ID: Final = b"\x0a\x10"  # Span.trace_id = 1, always 16 bytes
_SPAN_SPAN_ID: Final = b"\x12\x08"  # Span.span_id = 2, always 8 bytes
_SPAN_PARENT_ID: Final = b"\x22\x08"  # Span.parent_span_id = 4
_SPAN_NAME: Final = b"\x2a"  # Span.name = 5
_SPAN_KIND: Final = b"\x30"  # Span.kind = 6
_SPAN_START: Final = b"\x39"  # Span.start_time_unix_nano = 7 (fixed64)
_SPAN_END: Final = b"\x41"  # Span.end_time_unix_nano = 8 (fixed64)
_SPAN_ATTRIBUTE: Final = b"\x4a"  # Span.attributes = 9
_SPAN_EVENT: Final = b"\x5a"  # Span.events = 11
_SPAN_STATUS: Final = b"\x7a"  # Span.status = 15
_EVENT_TIME: Final = b"\x09"  # Event.time_unix_nano = 1 (fixed64)
_EVENT_NAME: Final = b"\x12"  # Event.name = 2
_EVENT_ATTRIBUTE: Final = b"\x1a"  # Event.attributes = 3
_STATUS_MESSAGE: Final = b"\x12"  # Status.message = 2
_STATUS_CODE: Final = b"\x18"  # Status.code = 3
_KV_KEY: Final = b"\x0a"  # KeyValue.key = 1
_KV_VALUE: Final = b"\x12"  # KeyValue.value = 2
_ANY_STRING: Final = b"\x0a"  # AnyValue.string_value = 1
_ANY_BOOL: Final = b"\x10"  # AnyValue.bool_value = 2
_ANY_INT: Final = b"\x18"  # AnyValue.int_value = 3
_ANY_DOUBLE: Final = b"\x21"  # AnyValue.double_value = 4 (fixed64)
_ANY_ARRAY: Final = b"\x2a"  # AnyValue.array_value = 5
_ANY_BYTES: Final = b"\x3a"  # AnyValue.bytes_value = 7
_ARRAY_VALUE: Final = b"\x0a"  # ArrayValue.values = 1

_VARINTS: Final = [bytes([n]) for n in range(128)]
_KEYS: dict[str, bytes] = {}  # attribute key -> its encoded KeyValue.key field
# (key, short string value) -> the whole encoded span attribute field; bounded, first come
_PAIRS: dict[tuple[str, str], bytes] = {}


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _VARINTS[value]
    if value < 0:  # protobuf writes a negative int32/int64/enum as its 64-bit two's complement
        value += 1 << 64
    out = bytearray()
    while value > 127:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _string(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode())


def _any(value: Any) -> bytes:
    if isinstance(value, str):
        return _string(_ANY_STRING, value)
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _ANY_INT + _varint(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, list | tuple):
        return _field(_ANY_ARRAY, b"".join(_field(_ARRAY_VALUE, _any(v)) for v in value))
    if isinstance(value, bytes):
        return _field(_ANY_BYTES, value)
    return _string(_ANY_STRING, str(value))


def span_attribute_fields(attributes: Mapping[str, Any]) -> bytes:
    """``attributes`` as encoded ``Span.attributes`` fields: what a span's
    ``encoded_attributes`` holds, and how a route's root attributes are kept, written once
    per config rather than once per traced request."""
    return b"".join(_attributes(_SPAN_ATTRIBUTE, attributes))


def python_attribute_fields(keys: tuple[str, ...], values: tuple[Any, ...]) -> bytes:
    """The pairs whose value is not None as encoded ``Span.attributes`` fields (a span's
    ``encoded_attributes``), in Python: :data:`attribute_fields` without the extension, and
    the reference the C version is tested against."""
    if (
        not isinstance(keys, tuple)
        or not isinstance(values, tuple)
        or len(keys) != len(values)
        or not all(isinstance(key, str) for key in keys)
    ):
        raise TypeError("attribute_fields(keys: tuple[str, ...], values: tuple of as many)")
    return b"".join(
        b"".join(_attributes(_SPAN_ATTRIBUTE, {key: value}))
        for key, value in zip(keys, values, strict=True)
        if value is not None
    )


attribute_fields: Callable[[tuple[str, ...], tuple[Any, ...]], bytes] = python_attribute_fields
"""``attribute_fields(keys, values)``: :func:`python_attribute_fields`, in C when the
extension is built: for a span whose attributes are all known when it starts (no dict made,
grown and walked per traced request)."""
if _c_attribute_fields is not None:
    set_fallback("attribute_fields", python_attribute_fields)
    attribute_fields = _c_attribute_fields


def _attributes(tag: bytes, attributes: Mapping[str, Any]) -> list[bytes]:
    """Each attribute as a length-delimited KeyValue field. Strings, ints, floats and bools
    (nearly all of them) take the inlined path; a repeated short string attribute of a span
    (method, route, plugin name...) is a dict lookup of its whole encoded field."""
    out: list[bytes] = []
    append = out.append
    keys = _KEYS
    varints = _VARINTS
    cached = _PAIRS if tag == _SPAN_ATTRIBUTE else None  # whole fields include the tag
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            if cached is not None:
                whole = cached.get((key, value))
                if whole is not None:
                    append(whole)
                    continue
            text = value.encode()
            size = len(text)
            any_value = (
                _ANY_STRING + varints[size] + text if size < 128 else _field(_ANY_STRING, text)
            )
        elif kind is int:
            any_value = _ANY_INT + (varints[value] if 0 <= value < 128 else _varint(value))
        elif kind is float:
            any_value = _ANY_DOUBLE + _pack_double(value)
        elif kind is bool:
            any_value = _ANY_BOOL + (b"\x01" if value else b"\x00")
        else:
            any_value = _any(value)
        encoded = keys.get(key)
        if encoded is None:
            encoded = _string(_KV_KEY, key)
            if len(keys) < 10_000:  # keys are a small fixed set; never let them grow unbounded
                keys[key] = encoded
        size = len(any_value)
        if size < 128:
            kv = encoded + _KV_VALUE + varints[size] + any_value
        else:
            kv = encoded + _field(_KV_VALUE, any_value)
        size = len(kv)
        field = tag + (varints[size] if size < 128 else _varint(size)) + kv
        if cached is not None and kind is str and len(value) <= 64 and len(cached) < 20_000:
            cached[(key, value)] = field
        append(field)
    return out


_NAMES: dict[str, bytes] = {}  # span name -> its encoded Span.name field; bounded
_pack_times = struct.Struct("<cQcQ").pack  # start and end fields in one call


def _span(trace_field: bytes, span: Span) -> bytes:
    name = _NAMES.get(span.name)
    if name is None:
        name = _string(_SPAN_NAME, span.name)
        if len(_NAMES) < 10_000:
            _NAMES[span.name] = name
    kind = span.kind
    parts = [trace_field, _SPAN_SPAN_ID, span.span_id]
    if span.parent_id:
        parts += (_SPAN_PARENT_ID, span.parent_id)
    parts += (
        name,
        _SPAN_KIND,
        _VARINTS[kind] if 0 <= kind < 128 else _varint(kind),
        _pack_times(_SPAN_START, span.start_ns, _SPAN_END, span.end_ns or span.start_ns),
    )
    if span.attributes:
        parts += _attributes(_SPAN_ATTRIBUTE, span.attributes)
    encoded = getattr(span, "encoded_attributes", b"")  # optional on span-like objects
    if encoded:
        parts.append(encoded)
    for event in span.events or ():
        body = b"".join(
            [
                _EVENT_TIME,
                _pack_fixed64(event.time_ns),
                _string(_EVENT_NAME, event.name),
                *_attributes(_EVENT_ATTRIBUTE, event.attributes),
            ]
        )
        parts.append(_field(_SPAN_EVENT, body))
    if span.status_code:
        status = b""
        if span.status_message:
            status = _string(_STATUS_MESSAGE, span.status_message)
        status += _STATUS_CODE + _varint(span.status_code)
        parts.append(_field(_SPAN_STATUS, status))
    body = b"".join(parts)
    size = len(body)
    return _SS_SPAN + (_VARINTS[size] if size < 128 else _varint(size)) + body


def python_trace_spans(trace_id: bytes, spans: Sequence[Span]) -> bytes:
    """The spans of one trace as consecutive ``ScopeSpans.spans`` fields (concatenating such
    pieces is how several traces share one ``ScopeSpans``), in Python: :data:`trace_spans`
    without the extension, and the reference the C encoder is tested against."""
    trace_field = _SPAN_TRACE_ID + trace_id
    return b"".join([_span(trace_field, span) for span in spans])


trace_spans: Callable[[bytes, Sequence[Span]], bytes] = python_trace_spans
"""``trace_spans(trace_id, spans)``: :func:`python_trace_spans`, encoded by the C extension
(``_wire.c``, the same bytes ~10x faster) when it is built, which hands values it leaves to
this module (integers beyond 64 bits, odd IDs) to :func:`python_trace_spans`."""
if _c_trace_spans is not None:
    set_fallback("trace_spans", python_trace_spans)
    trace_spans = _c_trace_spans


def _scope_field(scope_name: str, scope_version: str) -> bytes:
    """The ``ScopeSpans.scope`` field (an InstrumentationScope)."""
    scope = _string(_SCOPE_NAME, scope_name)
    if scope_version:
        scope += _string(_SCOPE_VERSION, scope_version)
    return _field(_SS_SCOPE, scope)


def resource_spans_encoded(
    resource: bytes, scope_name: str, scope_version: str, encoded_traces: Iterable[bytes]
) -> bytes:
    """A serialized ``ResourceSpans`` around traces encoded by :func:`trace_spans`."""
    scope_spans = _scope_field(scope_name, scope_version) + b"".join(encoded_traces)
    return _field(_RS_RESOURCE, resource) + _field(_RS_SCOPE_SPANS, scope_spans)


def resource_spans(
    resource: bytes,
    scope_name: str,
    scope_version: str,
    traces: Iterable[tuple[bytes, Sequence[Span]]],
) -> bytes:
    """A serialized ``ResourceSpans``: ``resource`` (a serialized Resource) and one scope."""
    encoded = [trace_spans(trace_id, spans) for trace_id, spans in traces]
    return resource_spans_encoded(resource, scope_name, scope_version, encoded)


_NODE_SPAN_BATCH: Final = b"\x1a"  # NodeMessage.span_batch = 3
_BATCH_ID: Final = b"\x0a"  # SpanBatch.batch_id = 1
_BATCH_SESSION_ID: Final = b"\x12"  # SpanBatch.session_ids = 2
_BATCH_RESOURCE_SPANS: Final = b"\x1a"  # SpanBatch.resource_spans = 3


def node_span_batch(
    batch_id: str,
    session_ids: Sequence[str],
    resource: bytes,
    scope_name: str,
    scope_version: str,
    encoded_traces: Sequence[bytes],
) -> bytes:
    """A serialized cluster ``NodeMessage`` carrying one ``SpanBatch`` whose ResourceSpans
    (as :func:`resource_spans_encoded` builds it) holds ``encoded_traces``.

    Sent as bytes: building the message objects would parse the spans and copy them twice
    more before gRPC serialized them again. The lengths of every nesting level are worked
    out first, so the traces (a batch is ~0.5 MB) are copied once, into the message.
    """
    scope_field = _scope_field(scope_name, scope_version)
    scope_spans_size = len(scope_field) + sum(map(len, encoded_traces))
    resource_field = _field(_RS_RESOURCE, resource)
    scope_spans_head = _RS_SCOPE_SPANS + _varint(scope_spans_size)
    resource_spans_size = len(resource_field) + len(scope_spans_head) + scope_spans_size
    head = _string(_BATCH_ID, batch_id)
    for session_id in session_ids:
        head += _string(_BATCH_SESSION_ID, session_id)
    head += _BATCH_RESOURCE_SPANS + _varint(resource_spans_size)
    message_head = _NODE_SPAN_BATCH + _varint(len(head) + resource_spans_size)
    return b"".join(
        [message_head, head, resource_field, scope_spans_head, scope_field, *encoded_traces]
    )
