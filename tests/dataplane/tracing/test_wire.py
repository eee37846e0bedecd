"""The wire encoder writes exactly what the opentelemetry-proto messages would."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataplane.tracing import wire
from dataplane.tracing._wire import attribute_fields as c_attribute_fields
from dataplane.tracing._wire import set_fallback
from dataplane.tracing._wire import trace_spans as c_trace_spans
from dataplane.tracing.otlp import encode_spans, encode_spans_messages, resource
from dataplane.tracing.spans import Span, SpanEvent

SCALARS = (
    st.text(max_size=300)
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=20)
)
VALUES = SCALARS | st.lists(SCALARS, max_size=4)
ATTRIBUTES = st.dictionaries(st.text(min_size=1, max_size=40), VALUES, max_size=12)


SPAN = st.tuples(
    st.text(max_size=200),  # name
    ATTRIBUTES,
    st.none() | st.integers(0, 10**9),  # duration (None: never ended)
    st.none() | st.tuples(st.text(max_size=20), st.text(max_size=100)),  # error
    st.none() | st.tuples(st.text(max_size=20), ATTRIBUTES),  # an event
)
TRACES = st.lists(
    st.tuples(st.binary(min_size=16, max_size=16), st.lists(SPAN, min_size=1, max_size=6)),
    max_size=4,
)


def _build(specs: list[Any]) -> list[Span]:
    """Spans from drawn specs (span IDs are random, so they are made here, not in strategies)."""
    spans: list[Span] = []
    for name, attributes, duration, error, event in specs:
        parent = spans[0].span_id if spans else b""
        span = Span(name, parent, 1_700_000_000_000_000_000, 2 if not spans else 1, attributes)
        if duration is not None:
            span.end(span.start_ns + duration)
        if error is not None:
            span.set_error(*error)
        if event is not None:
            span.events = [SpanEvent(event[0], 5, event[1])]
        spans.append(span)
    return spans


@given(drawn=TRACES)
def test_wire_encoding_equals_message_encoding(drawn: list[tuple[bytes, list[Any]]]) -> None:
    traces = [(trace_id, _build(specs)) for trace_id, specs in drawn]
    node: dict[str, Any] = {"service.name": "activetrace-dataplane", "gateway.node.id": "dp-1"}
    fast = encode_spans(resource(node), traces, "0.1.0")
    reference = encode_spans_messages(resource(node), traces, "0.1.0")
    assert fast == reference


def test_the_c_encoder_is_built() -> None:
    # scripts/bootstrap (pip install -e .) and the Docker image compile it (hatch_build.py)
    assert wire.ACCELERATED


@given(drawn=TRACES)
def test_c_and_python_encoders_write_the_same_bytes(drawn: list[tuple[bytes, list[Any]]]) -> None:
    for trace_id, specs in drawn:
        spans = _build(specs)
        assert wire.trace_spans(trace_id, spans) == wire.python_trace_spans(trace_id, spans)


def test_values_the_c_encoder_leaves_to_python() -> None:
    span = Span("s", b"", 1, 1, {"huge": 2**70})  # beyond 64 bits: wire.py's varint
    span.end(2)
    set_fallback("trace_spans", None)
    try:
        with pytest.raises(OverflowError):
            c_trace_spans(b"\x01" * 16, [span])
    finally:
        set_fallback("trace_spans", wire.python_trace_spans)
    # with its fallback (as the node runs it), wire.py encodes the trace itself
    assert wire.trace_spans is c_trace_spans
    assert wire.trace_spans(b"\x01" * 16, [span]) == wire.python_trace_spans(b"\x01" * 16, [span])


def test_self_referencing_and_deep_lists_raise_like_python() -> None:
    looped: list[Any] = []
    looped.append(looped)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    for value in (looped, deep):
        span = Span("s", b"", 1, 1, {"x": value})
        with pytest.raises(RecursionError):
            wire.trace_spans(b"\x01" * 16, [span])


def test_a_value_changing_its_list_while_encoded_is_safe() -> None:
    items: list[Any] = []

    class Shrinking:
        def __str__(self) -> str:
            items.clear()  # frees the other items while the encoder walks the list
            return "s"

    items.extend([Shrinking(), *(object() for _ in range(1000))])
    span = Span("s", b"", 1, 1, {"x": items})
    assert c_trace_spans(b"\x01" * 16, [span])  # encodes its own copy; no crash


def test_encoding_from_inside_an_encoding_keeps_both_right() -> None:
    """The C encoder reuses its buffers between calls; a value whose ``__str__`` encodes
    another trace (a nested call) must not write into the outer call's buffers."""
    inner = [Span(f"inner-{i}", b"\x02" * 8, 5, 1, {"k": "v" * 300}) for i in range(20)]
    nested: list[bytes] = []

    class Encoding:
        def __str__(self) -> str:
            nested.append(c_trace_spans(b"\x03" * 16, inner))
            return "outer value"

    outer = [Span("outer", b"", 1, 1, {"a": "b" * 100, "x": Encoding(), "z": 3})]
    got = c_trace_spans(b"\x01" * 16, outer)
    assert nested == [wire.python_trace_spans(b"\x03" * 16, inner)]
    outer[0].attributes["x"] = "outer value"
    assert got == wire.python_trace_spans(b"\x01" * 16, outer)
    assert c_trace_spans(b"\x01" * 16, outer) == got  # and the buffers still serve later calls


@pytest.mark.parametrize("field", ["kind", "status_code"])
def test_negative_enums_are_written_as_protobuf_writes_them(field: str) -> None:
    span = Span("s", b"", 1, 1)
    setattr(span, field, -1)  # the C encoder leaves it to wire.py, which must not wrap it
    span.end(2)
    trace_id = b"\x01" * 16
    node: dict[str, Any] = {"service.name": "activetrace-dataplane"}
    reference = encode_spans_messages(resource(node), [(trace_id, [span])], "0.1.0")
    assert encode_spans(resource(node), [(trace_id, [span])], "0.1.0") == reference


def test_a_kind_beyond_int_is_refused_by_position_and_by_keyword() -> None:
    with pytest.raises(OverflowError):
        Span("s", b"", None, 2**32 + 2)
    with pytest.raises(OverflowError):
        Span("s", b"", kind=2**32 + 2)


def test_a_long_chain_through_span_attributes_is_freed_without_overflowing_the_stack() -> None:
    from dataplane.tracing._wire import SpanBase

    chain = SpanBase("n", b"")
    for _ in range(200_000):
        chain = SpanBase("n", b"", attributes={"next": chain})
    del chain  # a dealloc without the trashcan recursed once per link (a segfault)


def test_a_fallback_is_a_callable_for_a_known_function() -> None:
    with pytest.raises(TypeError):
        set_fallback("node_span_batch", wire.python_trace_spans)
    with pytest.raises(TypeError):
        set_fallback("trace_spans", "not callable")  # type: ignore[arg-type]


@given(pairs=st.lists(st.tuples(st.text(min_size=1, max_size=40), st.none() | VALUES), max_size=8))
def test_attribute_fields_are_the_pairs_with_a_value_in_c_and_python(
    pairs: list[tuple[str, Any]],
) -> None:
    keys = tuple(key for key, _ in pairs)
    values = tuple(value for _, value in pairs)
    assert wire.attribute_fields is c_attribute_fields
    encoded = wire.attribute_fields(keys, values)
    assert encoded == wire.python_attribute_fields(keys, values)
    # as a span's encoded_attributes they are the attributes the dict would have written
    kept = {key: value for key, value in pairs if value is not None}
    if len(kept) == sum(value is not None for _, value in pairs):  # (distinct keys)
        dict_span, encoded_span = Span("s", b"", 1, 1, kept), Span("s", b"", 1, 1)
        encoded_span.encoded_attributes = encoded
        dict_span.span_id = encoded_span.span_id
        for span in (dict_span, encoded_span):
            span.end(2)
        as_dict, as_fields = (_decoded_attributes(span) for span in (dict_span, encoded_span))
        assert as_dict == as_fields


def _decoded_attributes(span: Span) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.trace.v1 import trace_pb2

    # a trace's encoded spans are ScopeSpans.spans fields
    scope_spans = trace_pb2.ScopeSpans.FromString(wire.trace_spans(b"\x01" * 16, [span]))
    (decoded,) = scope_spans.spans
    return {kv.key: MessageToDict(kv.value) for kv in decoded.attributes}


def test_attribute_fields_leave_what_c_refuses_to_python_and_check_their_arguments() -> None:
    keys, values = ("huge", "port"), (2**70, 80)
    set_fallback("attribute_fields", None)
    try:
        with pytest.raises(OverflowError):
            c_attribute_fields(keys, values)
    finally:
        set_fallback("attribute_fields", wire.python_attribute_fields)
    assert c_attribute_fields(keys, values) == wire.python_attribute_fields(keys, values)
    for bad in ((("a", "b"), (1,)), (["a"], (1,)), ((1,), (1,))):
        with pytest.raises(TypeError):
            c_attribute_fields(*bad)
        with pytest.raises(TypeError):
            wire.python_attribute_fields(*bad)
