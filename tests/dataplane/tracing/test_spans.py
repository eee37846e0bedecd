"""Span objects: the C struct (``_wire.SpanBase``) and its pure-Python twin behave the same."""

from __future__ import annotations

import gc
import os
import weakref
from typing import Any, cast

import pytest

from dataplane.tracing import wire
from dataplane.tracing.spans import (
    KIND_CLIENT,
    KIND_INTERNAL,
    STATUS_ERROR,
    STATUS_UNSET,
    PySpan,
    Span,
    now_ns,
)


@pytest.fixture(params=[Span, PySpan], ids=["c", "python"])
def span_class(request: pytest.FixtureRequest) -> Any:
    return request.param


def test_the_c_struct_is_what_the_node_uses() -> None:
    assert wire.ACCELERATED, "the C extension is not built (pip install -e . compiles it)"
    from dataplane.tracing._wire import SpanBase

    assert cast(object, Span) is SpanBase  # (mypy sees PySpan)


def test_the_clock_takes_no_arguments() -> None:
    assert now_ns() > 0
    with pytest.raises(TypeError):
        now_ns(1)  # type: ignore[call-arg]


def test_defaults(span_class: Any) -> None:
    before = now_ns()
    span = span_class("gateway.router", b"\x01" * 8)
    after = now_ns()
    assert before <= span.start_ns <= after
    assert span.name == "gateway.router"
    assert span.parent_id == b"\x01" * 8
    assert span.kind == KIND_INTERNAL
    assert span.end_ns == 0
    assert span.attributes == {}
    assert span.events is None
    assert span.status_code == STATUS_UNSET
    assert span.status_message == ""
    assert span.encoded_attributes == b""
    assert span_class("a", b"").attributes is not span_class("b", b"").attributes


def test_arguments_by_position_and_by_keyword(span_class: Any) -> None:
    attributes = {"k": "v"}
    by_position = span_class("n", b"", 7, KIND_CLIENT, attributes)
    by_keyword = span_class(
        name="n", parent_id=b"", start_ns=7, kind=KIND_CLIENT, attributes=attributes
    )
    for span in (by_position, by_keyword):
        assert (span.start_ns, span.kind) == (7, KIND_CLIENT)
        assert span.attributes is attributes


def test_ids_are_eight_random_bytes(span_class: Any) -> None:
    ids = {span_class("s", b"").span_id for _ in range(20_000)}
    assert len(ids) == 20_000
    assert all(len(i) == 8 and i != bytes(8) for i in ids)


def test_end_keeps_the_first_end(span_class: Any) -> None:
    span = span_class("s", b"", 100)
    span.end(250)
    span.end(900)
    span.end()
    assert span.end_ns == 250
    now = span_class("s", b"")
    now.end()
    assert now.start_ns <= now.end_ns <= now_ns()


def test_fields_are_writable(span_class: Any) -> None:
    span = span_class("HTTP", b"")
    span.name = "GET /orders"
    span.attributes = {"a": 1}
    span.end_ns = 5
    span.set_error("timeout", "upstream too slow")
    span.record_exception(ValueError("boom"), time_ns=3)
    assert span.name == "GET /orders"
    assert span.attributes == {"a": 1, "error.type": "timeout"}
    assert (span.status_code, span.status_message) == (STATUS_ERROR, "upstream too slow")
    assert span.events is not None
    assert [(e.name, e.time_ns) for e in span.events] == [("exception", 3)]
    assert span.events[0].attributes["exception.type"] == "builtins.ValueError"


def test_both_encode_to_the_same_bytes() -> None:
    trace_id = b"\x0a" * 16
    spans: list[Any] = []
    classes: tuple[Any, ...] = (Span, PySpan)
    for cls in classes:
        span = cls("GET /", b"\x02" * 8, 1_000, KIND_CLIENT, {"http.route": "/", "n": 3})
        span.span_id = b"\x03" * 8
        span.set_error("500")
        span.record_exception(RuntimeError("x"), time_ns=1_500)
        span.end(2_000)
        spans.append(span)
    encoded = [wire.trace_spans(trace_id, [span]) for span in spans]
    assert encoded[0] == encoded[1] == wire.python_trace_spans(trace_id, [spans[0]])


def test_a_cycle_through_attributes_is_collected() -> None:
    class Holder:
        span: Any = None

    holder = Holder()
    span = Span("s", b"", attributes={"holder": holder})
    holder.span = span
    gone = weakref.ref(holder)
    del holder, span
    gc.collect()
    assert gone() is None


def test_the_c_struct_refuses_bad_times() -> None:  # (PySpanBase stores what it gets)
    for bad in (-1, -(2**40), 2**64, 2**80):
        with pytest.raises(OverflowError):
            Span("s", b"", bad)
        with pytest.raises(OverflowError):
            Span("s", b"", 1).end(bad)
    with pytest.raises(TypeError):
        Span("s", b"", "soon")  # type: ignore[arg-type]


def test_the_c_struct_keeps_every_unsigned_64_bit_time() -> None:
    for time_ns in (0, 1, 2**30 - 1, 2**30, 1_800_000_000_123_456_789, 2**63, 2**64 - 1):
        span = Span("s", b"", time_ns)
        span.end(time_ns)
        assert (span.start_ns, span.end_ns) == (time_ns, time_ns)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send the next ID and leave without running pytest's teardown
        os.write(write, Span("child", b"").span_id)
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 8)
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id != Span("parent", b"").span_id


def test_trace_ids_are_sixteen_random_bytes_from_the_c_generator() -> None:
    from dataplane.tracing import _wire, spans

    assert spans.new_trace_id is _wire.trace_id
    ids = {spans.new_trace_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 16 and i != bytes(16) for i in ids)
    assert len(spans._python_new_trace_id()) == 16  # the fallback without the extension


def test_a_reused_span_starts_clean() -> None:
    """Freed C spans are kept for reuse: a new one has none of an old one's fields."""
    for _ in range(3):
        used = [Span("old", b"\x01" * 8, 5, KIND_CLIENT, {"a": 1}) for _ in range(300)]
        for span in used:
            span.set_error("timeout", "slow")
            span.record_exception(ValueError("x"), time_ns=6)
            span.encoded_attributes = b"\x0a\x00"
            span.end(7)
        del used, span
        fresh = Span("new", b"")
        assert (fresh.name, fresh.parent_id, fresh.kind, fresh.end_ns) == ("new", b"", 1, 0)
        assert fresh.attributes == {}
        assert fresh.events is None
        assert (fresh.status_code, fresh.status_message) == (STATUS_UNSET, "")
        assert fresh.encoded_attributes == b""


def test_ids_are_eight_bytes_and_a_parent_may_be_none(span_class: Any) -> None:
    span = span_class("s", b"")
    span.parent_id = b"\x05" * 8
    span.span_id = b"\x06" * 8
    assert (span.parent_id, span.span_id) == (b"\x05" * 8, b"\x06" * 8)
    span.parent_id = b""
    assert span.parent_id == b""
    if span_class is Span:  # (PySpan stores what it gets; the encoder then refuses it)
        with pytest.raises(ValueError, match="8 bytes"):
            span.span_id = b"\x01" * 7
        with pytest.raises(ValueError, match="8 bytes"):
            span.parent_id = b"\x01" * 9
        with pytest.raises(TypeError):
            Span("s", "0102030405060708")  # type: ignore[arg-type]
