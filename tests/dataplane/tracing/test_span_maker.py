"""A trace's ``span(...)``: the C ``RequestTrace.span`` and the Python ``PySpanMaker`` (what
``PyRequestTrace.span`` is) behave alike. A trace's spans start with its root."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dataplane.tracing.recorder import PyRequestTrace, PySpanMaker, RequestTrace
from dataplane.tracing.spans import KIND_CLIENT, KIND_INTERNAL, Span, now_ns


def _c() -> Any:
    return RequestTrace(head=[], tail=[], start_ns=1)


def _python() -> Any:
    trace = PyRequestTrace(head=[], tail=[], start_ns=1)
    assert type(trace.span) is PySpanMaker
    return trace


TRACES: list[Callable[[], Any]] = [_c, _python]


@pytest.mark.parametrize("new_trace", TRACES, ids=["c", "python"])
def test_a_child_is_started_and_added(new_trace: Callable[[], Any]) -> None:
    trace = new_trace()
    parent = Span("HTTP", b"")
    before = now_ns()
    child = trace.span("gateway.balancer", parent)
    assert type(child) is Span
    assert trace.spans[1:] == [child]
    assert child.parent_id == parent.span_id
    assert (child.name, child.kind, child.attributes, child.end_ns) == (
        "gateway.balancer",
        KIND_INTERNAL,
        {},
        0,
    )
    assert before <= child.start_ns <= now_ns()


@pytest.mark.parametrize("new_trace", TRACES, ids=["c", "python"])
def test_arguments_by_position_and_by_keyword(new_trace: Callable[[], Any]) -> None:
    trace = new_trace()
    make = trace.span
    parent = Span("HTTP", b"")
    attributes = {"server.port": 80}
    by_position = make("a", parent, 5, KIND_CLIENT, attributes)
    by_keyword = make("b", parent, start_ns=5, kind=KIND_CLIENT, attributes=attributes)
    mixed = make("c", parent, 5, attributes=attributes)
    for span in (by_position, by_keyword):
        assert (span.start_ns, span.kind) == (5, KIND_CLIENT)
        assert span.attributes is attributes
    assert (mixed.start_ns, mixed.kind, mixed.attributes) == (5, KIND_INTERNAL, attributes)
    assert [s.name for s in trace.spans[1:]] == ["a", "b", "c"]


@pytest.mark.parametrize("new_trace", TRACES, ids=["c", "python"])
def test_bad_calls_raise_and_add_nothing(new_trace: Callable[[], Any]) -> None:
    trace = new_trace()
    make = trace.span
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
    assert trace.spans[1:] == []


def test_a_parent_from_python_works_too() -> None:
    class Parent:
        span_id = b"\x05" * 8

    child = _c().span("a", Parent())
    assert child.parent_id == b"\x05" * 8


def test_the_c_trace_s_spans_must_be_a_list() -> None:
    trace = _c()
    trace.spans = ()
    with pytest.raises(TypeError):
        trace.span("a", trace.root)
