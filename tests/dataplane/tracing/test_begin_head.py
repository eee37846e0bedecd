"""``_wire.begin_head``: the start of a trace that head sessions keep, done in C.

The proxy calls it before ``Tracer.begin``: it must leave the sessions and the trace exactly as
``Tracer.begin`` does, and do nothing at all (returning None, for ``Tracer.begin`` to decide)
whenever there is more to decide: a rule to match, a tail session, a session this request fills,
an incoming ``traceparent``, another class or type than the node's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.proto.resource.v1 import resource_pb2

from dataplane.expr import RequestFacts
from dataplane.tracing._wire import RequestTrace, begin_head
from dataplane.tracing.export import SpanExport
from dataplane.tracing.sessions import NodeSession, SessionDefinition
from dataplane.tracing.tracer import Tracer

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _facts() -> RequestFacts:
    return RequestFacts(
        method="GET",
        host="example.com",
        path="/orders",
        query_string=b"",
        headers=[],
        scheme="http",
        sni=None,
        client=("127.0.0.1", 5000),
        server=("127.0.0.1", 8000),
    )


def _tracer() -> Tracer:
    return Tracer(SpanExport(node_resource=resource_pb2.Resource(), version="test"))


def _start(tracer: Tracer, name: str, **definition: Any) -> NodeSession:
    return tracer.sessions.start(SessionDefinition(session_id=name, **definition))


def _begin(tracer: Tracer, fast: bool, candidates: tuple[NodeSession, ...], **kw: Any) -> Any:
    """What the proxy does: C first when ``fast``, then ``Tracer.begin``."""
    traceparent = kw.get("traceparent")
    trace = begin_head(candidates, 5_000, traceparent) if fast else None
    return trace or tracer.begin(candidates, 5_000, traceparent, _facts)


def _seen(trace: Any) -> Any:
    if trace is None:
        return None
    return (
        [s.id for s in trace.head],
        [s.id for s in trace.tail],
        trace.capture_headers,
        trace.capture_body,
        trace.body_max_bytes,
        trace.root.start_ns,
        trace.root.parent_id,
        trace.spans == [trace.root],
        trace.trace_id if trace.root.parent_id else len(trace.trace_id),
    )


def _sessions(tracer: Tracer) -> Any:
    every = {**tracer.sessions.sessions, **tracer.sessions.ended}
    return {sid: (s.taken, s.in_flight, s.state) for sid, s in sorted(every.items())}, sorted(
        tracer.dirty
    )


def _scenario(fast: bool) -> list[Any]:
    tracer = _tracer()
    plain = _start(tracer, "plain", max_samples=6)
    headers = _start(tracer, "headers", capture=["headers"], body_max_bytes=100)
    body = _start(tracer, "body", capture=["body"], body_max_bytes=300)
    ruled = _start(tracer, "ruled", rule='http.method == "GET"')
    tail = _start(tracer, "tail", rule="http.status_code >= 500")
    stopped = _start(tracer, "stopped")
    tracer.sessions.finish(stopped, "stopped")
    seen: list[Any] = []
    runs: list[tuple[tuple[NodeSession, ...], dict[str, Any]]] = [
        ((plain,), {}),
        ((plain, headers, body), {}),
        ((body, headers), {}),
        ((plain, stopped), {}),
        ((stopped,), {}),
        ((plain, ruled), {}),
        ((plain, tail), {}),
        ((plain,), {"traceparent": TRACEPARENT}),
        ((headers,), {"traceparent": b""}),
        ((plain,), {}),  # (fills plain: Tracer ends it)
        ((plain, headers), {}),  # (plain ended: only headers takes it)
    ]
    for candidates, kw in runs:
        seen.append(_seen(_begin(tracer, fast, candidates, **kw)))
        seen.append(_sessions(tracer))
    return seen


def test_c_leaves_sessions_and_trace_as_python_does() -> None:
    assert _scenario(True) == _scenario(False)


def test_the_scenario_reaches_both_paths() -> None:
    tracer = _tracer()
    plain = _start(tracer, "plain", max_samples=2)
    assert begin_head((plain,), 5_000, None) is not None  # C's
    assert begin_head((plain,), 5_000, None) is None  # fills it: Python's
    assert plain.taken == 1


def _ready() -> tuple[Tracer, NodeSession]:
    tracer = _tracer()
    return tracer, _start(tracer, "s-1", capture=["headers"])


def test_it_starts_the_trace_as_the_tracer_does() -> None:
    _, session = _ready()
    trace = begin_head((session,), 7_000, None)
    assert isinstance(trace, RequestTrace)
    assert trace.head == [session]
    assert trace.tail == []
    assert trace.capture_headers is True
    assert trace.root.start_ns == 7_000
    assert (session.taken, session.in_flight) == (1, 1)


@pytest.mark.parametrize(
    ("change", "args"),
    [
        pytest.param(lambda t, s: None, ((), 1, None), id="no candidates"),
        pytest.param(lambda t, s: None, ("not a tuple", 1, None), id="not a tuple"),
        pytest.param(lambda t, s: None, (None, 1, TRACEPARENT), id="a traceparent"),
        pytest.param(lambda t, s: None, (None, -1, None), id="a bad start"),
        pytest.param(lambda t, s: setattr(s, "max_samples", 1), (None, 1, None), id="fills it"),
        pytest.param(lambda t, s: setattr(s, "tail", True), (None, 1, None), id="tail"),
        pytest.param(lambda t, s: setattr(s, "taken", 2.0), (None, 1, None), id="a float"),
        pytest.param(lambda t, s: setattr(s, "state", 3), (None, 1, None), id="a state not str"),
    ],
)
def test_it_does_nothing_when_python_has_more_to_decide(
    change: Callable[[Tracer, NodeSession], None], args: tuple[Any, int, bytes | None]
) -> None:
    tracer, session = _ready()
    change(tracer, session)
    candidates = (session,) if args[0] is None else args[0]
    before = _sessions(tracer), session.taken
    assert begin_head(candidates, args[1], args[2]) is None
    assert (_sessions(tracer), session.taken) == before


class _OwnAccess(NodeSession):
    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        return object.__getattribute__(self, name)


def test_another_session_class_is_left_to_python() -> None:
    tracer, session = _ready()
    own = _OwnAccess(session.definition, None, 1e12)
    assert begin_head((session, own), 1, None) is None
    assert session.taken == 0
    assert begin_head((object(),), 1, None) is None  # type: ignore[arg-type]
    nine = tuple(_start(tracer, f"s-{i}") for i in range(2, 11))
    assert begin_head(nine, 1, None) is None  # (more than it takes at once)


class _Other(NodeSession):
    """Slotted like NodeSession: C could read it, but not with a NodeSession beside it."""

    __slots__ = ()


def test_one_session_twice_or_two_classes_are_left_to_python() -> None:
    _, session = _ready()
    assert begin_head((session, session), 1, None) is None
    other = _Other(SessionDefinition(session_id="other"), None, 1e12)
    assert begin_head((session, other), 1, None) is None
    assert (session.taken, other.taken) == (0, 0)
    assert begin_head((other,), 1, None) is not None  # (alone, its slots are read)
    assert other.taken == 1


def test_a_wrong_call_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="begin_head"):
        begin_head()  # type: ignore[call-arg]


def _router(trace: Any) -> Any:
    return [
        (span.name, span.parent_id, span.kind, span.start_ns, span.end_ns, span.encoded_attributes)
        for span in trace.spans[1:]
    ]


def test_with_the_routers_end_and_fields_the_router_span_is_made_as_the_proxy_makes_it() -> None:
    _, session = _ready()
    fields = b"\x4a\x00"  # (an empty KeyValue: bytes of its own)
    trace = begin_head((session,), 7_000, None, 9_000, fields)
    assert trace is not None
    _, other = _ready()
    reference = _tracer().begin((other,), 7_000, None, _facts)
    assert reference is not None
    router = reference.span("gateway.router", reference.root, 7_000)  # (Proxy.__call__'s)
    router.encoded_attributes = fields
    router.end(9_000)
    seen = _router(trace)
    assert seen == [("gateway.router", trace.root.span_id, *_router(reference)[0][2:])]
    assert seen[0][3:5] == (7_000, 9_000)
    assert trace.spans[1].span_id != trace.root.span_id


@pytest.mark.parametrize(
    ("end", "fields"),
    [
        pytest.param(-1, b"", id="a bad end"),
        pytest.param(0, b"", id="no end"),
        pytest.param(9_000, "not bytes", id="fields not bytes"),
    ],
)
def test_a_router_span_c_cannot_make_is_left_to_python(end: int, fields: Any) -> None:
    tracer, session = _ready()
    before = _sessions(tracer), session.taken
    assert begin_head((session,), 7_000, None, end, fields) is None
    assert (_sessions(tracer), session.taken) == before


def test_four_arguments_are_a_type_error() -> None:
    _, session = _ready()
    with pytest.raises(TypeError, match="router_end_ns"):
        begin_head((session,), 7_000, None, 9_000)
    assert session.taken == 0
