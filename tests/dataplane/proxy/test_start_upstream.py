"""``_wire.start_upstream``: a try's upstream span, its traceparent header and the transport's
trace callable in one C call.

It must leave the trace as ``proxy.python_start_upstream`` (its reference) does: one span more,
a child of the balancer span, of the kind given, its known attributes encoded; the header naming
that span; a callable whose events land under it. For a trace or parent of another type it
returns None having touched nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from dataplane import proxy
from dataplane.tracing._wire import PhaseEvents, start_upstream, traceparent, upstream_answered
from dataplane.tracing.recorder import PyRequestTrace, RequestTrace
from dataplane.tracing.spans import KIND_CLIENT, PySpan, Span, now_ns
from dataplane.transport.events import SEND

KEYS = proxy._UPSTREAM_KEYS
VALUES: dict[str, tuple[Any, ...]] = {
    "first try": ("GET", "http://10.0.0.7:8080/orders?a=1", "10.0.0.7", 8080, None),
    "a retry": ("POST", "http://api.internal:80/x", "api.internal", 80, 2),
    "a value C leaves to Python": ("GET", "http://h:1/", "h", 1.5, None),  # (a float port)
}


def _trace() -> tuple[RequestTrace, Span]:
    trace = RequestTrace(head=[], tail=[], start_ns=1_000)
    return trace, trace.span("gateway.balancer", trace.root)


def _span(span: Span) -> tuple[Any, ...]:
    return (  # (not its IDs: random, checked against the parent's below)
        span.name,
        span.kind,
        span.encoded_attributes,
        dict(span.attributes),
        span.end_ns,
    )


@pytest.mark.parametrize("case", list(VALUES))
def test_c_starts_the_try_as_python_does(case: str) -> None:
    c_trace, c_balancer = _trace()
    python_trace, python_balancer = _trace()
    started = start_upstream(
        c_trace, c_balancer, "gateway.upstream", KIND_CLIENT, KEYS, VALUES[case]
    )
    assert started is not None
    span, header, events = started
    reference = proxy.python_start_upstream(
        python_trace, python_balancer, "gateway.upstream", KIND_CLIENT, KEYS, VALUES[case]
    )
    assert _span(span) == _span(reference[0])
    assert span.parent_id == c_balancer.span_id
    assert reference[0].parent_id == python_balancer.span_id
    assert c_trace.spans[-1] is span
    assert len(c_trace.spans) == len(python_trace.spans) == 3
    assert header == traceparent(c_trace.trace_id, span)
    assert reference[1] == traceparent(python_trace.trace_id, reference[0])
    assert isinstance(events, PhaseEvents)
    events(SEND + ".started", {})  # (the phase spans land under this try's span)
    assert c_trace.spans[-1].name == "gateway.upstream.send_request"
    assert c_trace.spans[-1].parent_id == span.span_id


def test_the_span_starts_now() -> None:
    trace, balancer = _trace()
    before = now_ns()
    started = start_upstream(
        trace, balancer, "gateway.upstream", KIND_CLIENT, KEYS, VALUES["a retry"]
    )
    assert started is not None
    assert before <= started[0].start_ns <= now_ns()


def test_other_types_are_left_to_python_untouched() -> None:
    python_trace = PyRequestTrace(head=[], tail=[], start_ns=1_000)
    balancer = python_trace.span("gateway.balancer", python_trace.root)
    spans = list(python_trace.spans)
    assert start_upstream(python_trace, balancer, "u", KIND_CLIENT, KEYS, VALUES["a retry"]) is None
    assert python_trace.spans == spans
    trace, _ = _trace()
    python_parent = PySpan("gateway.balancer", trace.root.span_id)
    spans = list(trace.spans)
    assert start_upstream(trace, python_parent, "u", KIND_CLIENT, KEYS, VALUES["a retry"]) is None
    assert list(trace.spans) == spans


def test_errors_leave_no_span_behind() -> None:
    trace, balancer = _trace()
    with pytest.raises(TypeError, match="start_upstream"):
        start_upstream(trace, balancer)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        start_upstream(trace, balancer, "u", "client", KEYS, VALUES["a retry"])  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        start_upstream(trace, balancer, "u", KIND_CLIENT, KEYS, ("GET",))  # (too few values)
    assert [span.name for span in trace.spans] == [trace.root.name, "gateway.balancer"]


class _Peer(tuple[str, int]):
    """A tuple subclass: its first item read as Python reads it (peer[0])."""

    def __getitem__(self, index: Any) -> Any:
        return "via-getitem" if index == 0 else super().__getitem__(index)


ANSWERS: dict[str, tuple[Any, Any]] = {
    "200 from an address": (200, ("10.0.0.7", 8080)),
    "404": (404, ("10.0.0.7", 8080)),
    "599, no peer": (599, None),
    "a socket path": (502, "/run/upstream.sock"),
    "an empty tuple": (200, ()),
    "a tuple subclass": (500, _Peer(("10.0.0.7", 1))),
    "a huge status": (10**30, ("h", 1)),
    "a negative status": (-1, ("h", 1)),
    "a bool status (Python's)": (True, ("h", 1)),
}


@pytest.mark.parametrize("case", list(ANSWERS))
def test_the_answer_is_written_as_python_writes_it(case: str) -> None:
    status, peer = ANSWERS[case]
    spans = []
    for answered in (upstream_answered, proxy.python_upstream_answered):
        trace, balancer = _trace()
        span = trace.span("gateway.upstream", balancer)
        span.attributes["before"] = 1
        if not answered(span, status, peer):
            assert not isinstance(status, int) or isinstance(status, bool)
            proxy.python_upstream_answered(span, status, peer)
        spans.append((_span(span), span.status_code, span.status_message))
    assert spans[0] == spans[1]


def test_other_types_are_left_to_python_by_the_answer() -> None:
    python_span = PySpan("gateway.upstream", b"\x00" * 8)
    assert upstream_answered(python_span, 200, None) is False
    assert python_span.attributes == {}
    with pytest.raises(TypeError, match="upstream_answered"):
        upstream_answered(python_span)  # type: ignore[call-arg]
