"""W3C trace context parsing and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataplane.tracing import recorder
from dataplane.tracing._wire import traceparent
from dataplane.tracing.recorder import (
    format_traceparent,
    parse_traceparent,
    python_traceparent_header,
    traceparent_header,
)
from dataplane.tracing.spans import Span

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_valid_traceparent_is_continued() -> None:
    parsed = parse_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert parsed == (bytes.fromhex(TRACE), bytes.fromhex(SPAN))


def test_future_versions_may_carry_more_fields() -> None:
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-extra") is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",
        f"00-{TRACE[:-1]}-{SPAN}-01",
    ],
)
def test_invalid_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None


def test_format_round_trips() -> None:
    value = format_traceparent(bytes.fromhex(TRACE), bytes.fromhex(SPAN))
    assert value == f"00-{TRACE}-{SPAN}-01"
    assert parse_traceparent(value) == (bytes.fromhex(TRACE), bytes.fromhex(SPAN))


def test_the_header_value_comes_from_c() -> None:
    assert traceparent_header is traceparent
    assert recorder.traceparent_header is traceparent


@given(trace_id=st.binary(max_size=40), span_id=st.binary(max_size=20))
def test_c_and_python_write_the_same_header(trace_id: bytes, span_id: bytes) -> None:
    assert traceparent(trace_id, span_id) == python_traceparent_header(trace_id, span_id)


def test_the_header_of_a_span_is_that_of_its_id() -> None:
    span = Span("gateway.upstream", b"")
    for write in (traceparent, python_traceparent_header):
        assert write(b"\x4b" * 16, span) == traceparent(b"\x4b" * 16, span.span_id)
    with pytest.raises(TypeError):
        traceparent(b"\x4b" * 16, "not a span")  # type: ignore[arg-type]


def test_a_header_written_is_read_back() -> None:
    value = traceparent(b"\x4b" * 16, b"\x00\xf1" * 4)
    assert value == b"00-4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b-00f100f100f100f1-01"
    assert parse_traceparent(value.decode()) == (b"\x4b" * 16, b"\x00\xf1" * 4)


@pytest.mark.parametrize("odd", [(bytearray(16), b"\x01" * 8), ("00", b"\x01" * 8), (b"",)])
def test_the_c_writer_takes_two_bytes_only(odd: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        traceparent(*odd)  # type: ignore[arg-type]
