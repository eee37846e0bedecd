"""The C conversion of serialized span batches (``_rows.c``) against its reference, span_rows."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from controlplane.cluster.messages import EncodedSpanBatch, read_node_message
from controlplane.otlp import convert
from controlplane.otlp.convert import (
    GATEWAY_SERVICE_NAME,
    SpanRows,
    encoded_span_rows,
    message_span_rows,
    span_rows,
)
from protos.activetrace.cluster.v1 import cluster_pb2 as pb
from tests.protowire import length_delimited, varint

_rows = pytest.importorskip("controlplane.otlp._rows", reason="the C extension is not built")


@pytest.fixture(params=["c", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """encoded_span_rows with the C extension, and with its Python fallback."""
    if request.param == "python":
        monkeypatch.setattr(convert, "_c_rows", None)
    return str(request.param)


def _same(expected: SpanRows, got: SpanRows) -> None:
    assert got.rows == expected.rows
    assert got.per_trace == expected.per_trace
    assert got.roots == expected.roots


def _kv(key: str, value: common_pb2.AnyValue) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=value)


def _span(**fields: Any) -> trace_pb2.Span:
    base: dict[str, Any] = {
        "trace_id": b"\x01" * 16,
        "span_id": b"\x02" * 8,
        "name": "GET /orders",
        "kind": trace_pb2.Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": 1_700_000_000_000_000_000,
        "end_time_unix_nano": 1_700_000_000_001_000_000,
    }
    return trace_pb2.Span(**{**base, **fields})


def _resource_spans(
    spans: list[trace_pb2.Span],
    service: str = GATEWAY_SERVICE_NAME,
    scope: common_pb2.InstrumentationScope | None = None,
) -> trace_pb2.ResourceSpans:
    resource = resource_pb2.Resource(
        attributes=[
            _kv("service.name", common_pb2.AnyValue(string_value=service)),
            _kv("gateway.node.id", common_pb2.AnyValue(string_value="dp-1")),
        ]
    )
    return trace_pb2.ResourceSpans(
        resource=resource,
        scope_spans=[
            trace_pb2.ScopeSpans(
                scope=scope or common_pb2.InstrumentationScope(name="activetrace", version="1"),
                spans=spans,
            )
        ],
    )


def _check(resource_spans: list[trace_pb2.ResourceSpans]) -> SpanRows:
    expected = span_rows(resource_spans)
    got = encoded_span_rows([rs.SerializeToString() for rs in resource_spans])
    _same(expected, got)
    _same(expected, message_span_rows(resource_spans))  # the OTLP receiver's way in
    return got


# AnyValues of every kind, nested; text with what JSON must escape (quotes, backslashes,
# control characters, NUL) and non-ASCII.
_text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ['"q"', "back\\slash", "\x00", "\x1f\x7f", "é中😀", "line\nfeed\ttab\r\b\f"]
)
_scalars = st.one_of(
    _text.map(lambda s: common_pb2.AnyValue(string_value=s)),
    st.booleans().map(lambda b: common_pb2.AnyValue(bool_value=b)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: common_pb2.AnyValue(int_value=i)),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: common_pb2.AnyValue(double_value=f)
    ),
    st.binary(max_size=6).map(lambda b: common_pb2.AnyValue(bytes_value=b)),
    st.just(common_pb2.AnyValue()),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(
            lambda vs: common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=vs))
        ),
        st.lists(st.tuples(_text, inner), max_size=3).map(
            lambda kvs: common_pb2.AnyValue(
                kvlist_value=common_pb2.KeyValueList(values=[_kv(k, v) for k, v in kvs])
            )
        ),
    ),
    max_leaves=6,
)
_attributes = st.lists(st.tuples(_text, _values), max_size=5).map(
    lambda kvs: [_kv(k, v) for k, v in kvs]
)
_events = st.lists(
    st.builds(
        trace_pb2.Span.Event,
        time_unix_nano=st.integers(0, 2**64 - 1),
        name=_text,
        attributes=_attributes,
    ),
    max_size=2,
)
_spans = st.builds(
    trace_pb2.Span,
    trace_id=st.sampled_from([b"\x01" * 16, b"\xab" * 16, b"", b"\x01" * 15]),
    span_id=st.binary(min_size=7, max_size=9) | st.just(b"\x02" * 8),
    parent_span_id=st.sampled_from([b"", b"\x03" * 8, b"\x04"]),
    name=_text,
    kind=st.sampled_from([0, 1, 2, 3, 4, 5, 42, -1]),
    start_time_unix_nano=st.integers(0, 2**64 - 1),
    end_time_unix_nano=st.integers(0, 2**64 - 1),
    attributes=_attributes,
    events=_events,
    status=st.builds(trace_pb2.Status, message=_text, code=st.sampled_from([0, 1, 2, 9])),
)


@settings(max_examples=300, deadline=None)
@given(
    spans=st.lists(_spans, max_size=4),
    service=st.sampled_from([GATEWAY_SERVICE_NAME, "orders", ""]),
    scope=st.builds(common_pb2.InstrumentationScope, name=_text, version=_text),
)
def test_generated_batches_convert_as_the_reference_does(
    spans: list[trace_pb2.Span], service: str, scope: common_pb2.InstrumentationScope
) -> None:
    _check([_resource_spans(spans, service, scope), _resource_spans(spans[:1], "other")])


def test_a_gateway_trace(path: str) -> None:
    root_attributes = [
        _kv("http.request.method", common_pb2.AnyValue(string_value="GET")),
        _kv("url.path", common_pb2.AnyValue(string_value="/orders")),
        _kv("http.response.status_code", common_pb2.AnyValue(int_value=502)),
        _kv("error.type", common_pb2.AnyValue(string_value="502")),
        _kv("gateway.latency.total_ms", common_pb2.AnyValue(double_value=1.25)),
    ]
    spans = [
        _span(attributes=root_attributes),
        _span(
            span_id=b"\x05" * 8,
            parent_span_id=b"\x02" * 8,
            name="gateway.upstream",
            kind=trace_pb2.Span.SPAN_KIND_CLIENT,
            status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="refused"),
            events=[trace_pb2.Span.Event(time_unix_nano=5, name="exception")],
        ),
    ]
    got = _check([_resource_spans(spans)])
    assert [r.trace_id for r in got.roots] == ["01" * 16]
    root = got.roots[0]
    assert root.error
    assert root.node_id == "dp-1"
    assert root.attributes["http.response.status_code"] == 502
    assert got.per_trace == {"01" * 16: 2}
    upstream = got.rows[1]
    assert upstream[:4] == ("01" * 16, "05" * 8, "02" * 8, "gateway.upstream")
    assert upstream[12] == '[{"name":"exception","time_unix_nano":5,"attributes":{}}]'


def test_a_roots_nul_takes_the_nul_safe_text() -> None:
    spans = [_span(attributes=[_kv("a", common_pb2.AnyValue(string_value="x\x00y"))])]
    got = _check([_resource_spans(spans)])
    assert got.rows[0][11] == '{"a":"x\ufffdy"}'
    assert got.roots[0].attributes == {"a": "x\x00y"}


def test_values_convert_as_json_and_python_would() -> None:
    spans = [
        _span(
            kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
            attributes=[
                _kv("inf", common_pb2.AnyValue(double_value=math.inf)),
                _kv("small", common_pb2.AnyValue(double_value=1e-7)),
                _kv("big", common_pb2.AnyValue(double_value=1e16)),
                _kv("min", common_pb2.AnyValue(int_value=-(2**63))),
                _kv("unset", common_pb2.AnyValue()),
                _kv("raw", common_pb2.AnyValue(bytes_value=b"\x00\xff")),
            ],
        )
    ]
    got = _check([_resource_spans(spans)])
    assert got.rows[0][11] == (
        '{"inf":null,"small":1e-07,"big":1e+16,"min":-9223372036854775808,'
        '"unset":null,"raw":"00ff"}'
    )


def test_a_resource_without_attributes_and_no_resource_at_all() -> None:
    bare = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[_span()])])
    got = _check([bare])
    assert got.rows[0][9:11] == ("", None)  # service name, node ID
    assert got.roots == []  # not a gateway's span


def test_many_traces_in_one_batch_count_per_trace() -> None:
    spans = [
        _span(trace_id=bytes([t]) * 16, span_id=bytes([t, s]) * 4, kind=1)
        for t in range(1, 4)
        for s in range(5)
    ]
    got = _check([_resource_spans(spans)])
    assert sorted(got.per_trace.values()) == [5, 5, 5]


def _serialized_batch() -> bytes:
    return _resource_spans(
        [_span(attributes=[_kv("k", common_pb2.AnyValue(string_value="v"))])]
    ).SerializeToString()


@pytest.mark.parametrize("cut", [1, 5, 17, -1, -3])
def test_a_truncated_batch_is_a_value_error(path: str, cut: int) -> None:
    data = _serialized_batch()
    with pytest.raises(ValueError, match="malformed"):
        encoded_span_rows([data[:cut]])


def test_invalid_utf8_is_a_value_error(path: str) -> None:
    data = _serialized_batch().replace(b"\x01v", b"\x01\xff")  # the value "v" (length 1)
    with pytest.raises(ValueError, match="malformed"):
        encoded_span_rows([data])


def test_nesting_past_the_limit_is_a_value_error(path: str) -> None:
    field = length_delimited  # protobuf's own messages refuse to nest this deep
    value = common_pb2.AnyValue(string_value="leaf").SerializeToString()
    for _ in range(120):
        value = field(0x2A, field(0x0A, value))  # AnyValue.array_value.values[0]
    attribute = field(0x4A, field(0x0A, b"deep") + field(0x12, value))  # Span.attributes
    span = _span(kind=1).SerializeToString() + attribute
    data = field(0x12, field(0x12, span))  # ResourceSpans.scope_spans[0].spans[0]
    with pytest.raises(ValueError, match="malformed"):
        encoded_span_rows([data])


def test_unknown_fields_are_skipped() -> None:
    data = _serialized_batch()
    extra = b"\xa8\x1f\x07" + b"\xb1\x1f" + b"\x00" * 8 + b"\xbd\x1f" + b"\x00" * 4  # 501, 502, 503
    _same(span_rows([trace_pb2.ResourceSpans.FromString(data)]), encoded_span_rows([extra + data]))


def test_node_messages_split_only_when_they_are_span_batches() -> None:
    rs = _resource_spans([_span()])
    batch = pb.NodeMessage(
        span_batch=pb.SpanBatch(batch_id="b-1", session_ids=["s1", "s2"], resource_spans=[rs, rs])
    )
    read = read_node_message(batch.SerializeToString())
    assert read == EncodedSpanBatch("b-1", ["s1", "s2"], [rs.SerializeToString()] * 2)
    assert isinstance(read, EncodedSpanBatch)
    assert read.decoded() == [rs, rs]
    heartbeat = pb.NodeMessage(heartbeat=pb.Heartbeat(requests=3))
    assert read_node_message(heartbeat.SerializeToString()) == heartbeat
    assert read_node_message(b"") == pb.NodeMessage()
    empty = pb.NodeMessage(span_batch=pb.SpanBatch())
    assert read_node_message(empty.SerializeToString()) == EncodedSpanBatch("", [], [])


def test_a_truncated_node_message_is_a_value_error() -> None:
    data = pb.NodeMessage(span_batch=pb.SpanBatch(batch_id="b-1")).SerializeToString()
    with pytest.raises(ValueError, match="malformed"):
        _rows.node_span_batch(data[:-1])


_VALID = _resource_spans(
    [
        _span(
            attributes=[
                _kv("k", common_pb2.AnyValue(string_value="v")),
                _kv(
                    "list",
                    common_pb2.AnyValue(
                        array_value=common_pb2.ArrayValue(
                            values=[common_pb2.AnyValue(int_value=-1)]
                        )
                    ),
                ),
            ],
            events=[trace_pb2.Span.Event(time_unix_nano=1, name="e")],
            status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="m"),
        )
    ]
).SerializeToString()


@settings(max_examples=500, deadline=None)
@given(
    data=st.binary(max_size=200)
    | st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)).map(
        lambda flip: _VALID[: flip[0]] + bytes([flip[1]]) + _VALID[flip[0] + 1 :]
    )
)
def test_any_bytes_give_rows_or_a_value_error(data: bytes) -> None:
    """Random bytes and valid batches with one byte changed: never a crash or another error."""
    with contextlib.suppress(ValueError):
        _rows.node_span_batch(data)
    try:
        converted = encoded_span_rows([data])
    except ValueError:
        return
    assert len(converted.rows) == sum(converted.per_trace.values())


def test_two_invalid_texts_in_one_span_are_one_value_error(path: str) -> None:
    span = _span(name="N", status=trace_pb2.Status(message="M"))
    data = _resource_spans([span]).SerializeToString()
    data = data.replace(b"\x2a\x01N", b"\x2a\x01\xff").replace(b"\x12\x01M", b"\x12\x01\xff")
    with pytest.raises(ValueError, match="malformed"):
        encoded_span_rows([data])


def test_unknown_groups_are_skipped_as_protobuf_skips_them() -> None:
    inner_group = varint(601 << 3 | 3) + b"\x08\x05" + varint(601 << 3 | 4)
    group = varint(600 << 3 | 3) + b"\x08\x01" + inner_group + varint(600 << 3 | 4)
    data = group + _serialized_batch()
    _same(span_rows([trace_pb2.ResourceSpans.FromString(data)]), encoded_span_rows([data]))


@pytest.mark.parametrize(
    "group",
    [
        varint(600 << 3 | 3) + b"\x08\x01",  # never ended
        varint(600 << 3 | 3) + varint(601 << 3 | 4),  # ended by another field
        varint(600 << 3 | 4),  # an end without a start
        b"\x0e",  # wire type 6 does not exist
    ],
)
def test_broken_groups_are_a_value_error(group: bytes) -> None:
    with pytest.raises(ValueError, match="malformed"):
        encoded_span_rows([_serialized_batch() + group])


def test_a_batch_rows_accept_may_still_be_refused_by_protobuf() -> None:
    """Rows read only what they store: invalid UTF-8 in a span's trace_state passes them, and
    protobuf (what forwarding uses) refuses it; the servicer counts that, tested end to end."""
    data = _resource_spans([_span(trace_state="X")]).SerializeToString()
    data = data.replace(b"\x1a\x01X", b"\x1a\x01\xff")
    assert len(encoded_span_rows([data]).rows) == 1
    batch = EncodedSpanBatch("b", ["s"], [data])
    with pytest.raises(DecodeError):
        batch.decoded()
