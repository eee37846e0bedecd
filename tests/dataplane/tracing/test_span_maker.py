"""A trace's ``span(...)``: the C SpanMaker and the Python PySpanMaker behave alike."""

from __future__ import annotations

from typing import Any

import pytest

from dataplane.tracing import recorder
from dataplane.tracing._wire import SpanMaker
from dataplane.tracing.recorder import PyRequestTrace, PySpanMaker
from dataplane.tracing.spans import KIND_CLIENT, KIND_INTERNAL, Span, now_ns

MAKERS = [SpanMaker, PySpanMaker]


def test_the_c_maker_is_what_python_traces_use() -> None:
    trace = PyRequestTrace(head=[], tail=[], start_ns=1)  # (the C RequestTrace has a method)
    assert type(trace.span) is SpanMaker  # type: ignore[comparison-overlap]
    assert recorder._SpanMaker is SpanMaker


@pytest.mark.parametrize("maker", MAKERS)
def test_a_child_is_started_and_added(maker: Any) -> None:
    spans: list[Span] = []
    make = maker(spans, Span)
    parent = Span("HTTP", b"")
    before = now_ns()
    child = make("gateway.balancer", parent)
    assert type(child) is Span
    assert spans == [child]
    assert child.parent_id == parent.span_id
    assert (child.name, child.kind, child.attributes, child.end_ns) == (
        "gateway.balancer",
        KIND_INTERNAL,
        {},
        0,
    )
    assert before <= child.start_ns <= now_ns()


@pytest.mark.parametrize("maker", MAKERS)
def test_arguments_by_position_and_by_keyword(maker: Any) -> None:
    spans: list[Span] = []
    make = maker(spans, Span)
    parent = Span("HTTP", b"")
    attributes = {"server.port": 80}
    by_position = make("a", parent, 5, KIND_CLIENT, attributes)
    by_keyword = make("b", parent, start_ns=5, kind=KIND_CLIENT, attributes=attributes)
    mixed = make("c", parent, 5, attributes=attributes)
    for span in (by_position, by_keyword):
        assert (span.start_ns, span.kind) == (5, KIND_CLIENT)
        assert span.attributes is attributes
    assert (mixed.start_ns, mixed.kind, mixed.attributes) == (5, KIND_INTERNAL, attributes)
    assert [s.name for s in spans] == ["a", "b", "c"]


@pytest.mark.parametrize("maker", MAKERS)
def test_bad_calls_raise_and_add_nothing(maker: Any) -> None:
    spans: list[Span] = []
    make = maker(spans, Span)
    parent = Span("HTTP", b"")
    with pytest.raises(TypeError):
        make("a")
    with pytest.raises(TypeError):
        make("a", parent, 1, kind=2, start_ns=3)  # start_ns twice
    with pytest.raises(TypeError):
        make("a", parent, colour="red")
    with pytest.raises(AttributeError):
        make("a", object())  # a parent without a span_id
    with pytest.raises((TypeError, OverflowError)):
        make("a", parent, "soon")
    assert spans == []


def test_a_parent_from_python_works_too() -> None:
    class Parent:
        span_id = b"\x05" * 8

    spans: list[Span] = []
    child = SpanMaker(spans, Span)("a", Parent())  # type: ignore[arg-type]
    assert child.parent_id == b"\x05" * 8


def test_the_span_type_must_be_a_span() -> None:
    with pytest.raises(TypeError):
        SpanMaker([], dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SpanMaker((), Span)  # type: ignore[arg-type]
