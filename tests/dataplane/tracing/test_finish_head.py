"""``_wire.finish_head``: the end of a trace one head session kept, done whole in C.

It must leave the tracer, its export and the session exactly as ``Tracer.finish``'s Python path
does, and do nothing at all (returning None) whenever that path has more to do: a batch to start
or to send, the buffer's bound, an ended session's last trace, tail or several sessions, another
class or type than the node's. The scenarios run twice, once with the C path and once with
Python's alone, and compare everything both leave behind, byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.proto.resource.v1 import resource_pb2

from dataplane.tracing import tracer as tracer_module
from dataplane.tracing import wire
from dataplane.tracing._wire import finish_head, trace_spans
from dataplane.tracing.export import SpanExport
from dataplane.tracing.recorder import RequestTrace
from dataplane.tracing.sessions import NodeSession, SessionDefinition
from dataplane.tracing.tracer import Tracer, python_finish_head

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _no_facts() -> Any:
    raise AssertionError("no rule here needs the request's facts")


def _tracer(**export: Any) -> Tracer:
    return Tracer(SpanExport(node_resource=resource_pb2.Resource(), version="test", **export))


def _session(tracer: Tracer, name: str, max_samples: int = 1_000) -> NodeSession:
    return tracer.sessions.start(SessionDefinition(session_id=name, max_samples=max_samples))


def _trace(tracer: Tracer, sessions: tuple[NodeSession, ...], serial: int, children: int) -> Any:
    """A traced request with ``children`` spans under its root, its IDs and times fixed by
    ``serial`` (the same bytes whichever path ends it)."""
    trace = tracer.begin(sessions, 1_000 + serial, TRACEPARENT, _no_facts)
    if trace is None:
        return None
    trace.root.span_id = serial.to_bytes(8, "big")
    for child in range(children):
        span = trace.span(f"child-{child}", trace.root, 2_000 + serial)
        span.span_id = (serial * 100 + child + 1).to_bytes(8, "big")
        span.parent_id = trace.root.span_id
        span.end(3_000 + serial)
    trace.root.encoded_attributes = b"\x4a\x00"  # (an empty KeyValue: bytes of its own)
    return trace


def _state(tracer: Tracer, sessions: list[NodeSession]) -> dict[str, Any]:
    export = tracer.export
    return {
        "pending": {ids: (b.spans, list(b.traces)) for ids, b in export.pending.items()},
        "full": [(b.session_ids, b.spans, list(b.traces)) for b in export.full],
        "counts": (export.pending_spans, export.unacked_spans, export.dropped),
        "woken": export._wakeup.is_set(),
        "traced": tracer.traced,
        "dirty": set(tracer.dirty),
        "sessions": [(s.taken, s.in_flight, s.state) for s in sessions],
    }


Scenario = Callable[[Tracer], tuple[list[NodeSession], list[bytes]]]


def _run(scenario: Scenario, fast: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(tracer_module, "finish_head", python_finish_head)
        tracer = _tracer(batch_spans=7, max_spans=40)
        sessions, roots = scenario(tracer)
        return {**_state(tracer, sessions), "roots": roots}


def _one_session(tracer: Tracer) -> tuple[list[NodeSession], list[bytes]]:
    """Traces of 1-3 spans: the first starts a batch, most fill it, some start the next one and
    wake the sender; a flush moves some to unacked, and the bound then drops the oldest."""
    session = _session(tracer, "s-1")
    roots = []
    sizes = random.Random(7)
    for serial in range(60):
        trace = _trace(tracer, (session,), serial, sizes.randrange(3))
        assert tracer.finish(trace) == ("s-1",)
        roots.append(trace.root.encoded_attributes)
        if serial == 20:
            tracer.export.flush()  # (no sender: the batches wait for an ack, counted)
    return [session], roots


def _ending_session(tracer: Tracer) -> tuple[list[NodeSession], list[bytes]]:
    """A session that completes while its traces are in flight: its last trace (C's to end
    but for the session: the batch has room) ends it."""
    session = _session(tracer, "s-1", max_samples=4)
    traces = [_trace(tracer, (session,), serial, 0) for serial in range(5)]
    assert traces[-1] is None
    assert session.state == "completed"
    tracer.dirty.clear()
    roots = []
    for trace in traces[:-1]:
        tracer.finish(trace)
        roots.append(trace.root.encoded_attributes)
    return [session], roots


def _mixed_sessions(tracer: Tracer) -> tuple[list[NodeSession], list[bytes]]:
    """Two sessions on some traces (Python's path), one on others (C's)."""
    first, second = _session(tracer, "s-1"), _session(tracer, "s-2")
    roots = []
    for serial in range(12):
        sessions = (first, second) if serial % 3 == 0 else (first,)
        trace = _trace(tracer, sessions, serial, 1)
        tracer.finish(trace)
        roots.append(trace.root.encoded_attributes)
    return [first, second], roots


@pytest.mark.parametrize("scenario", [_one_session, _ending_session, _mixed_sessions])
def test_c_leaves_everything_as_python_does(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    c_state = _run(scenario, True, monkeypatch)
    assert c_state == _run(scenario, False, monkeypatch)


def test_the_scenarios_reach_every_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    """(What the comparison above covers.) The C path ends most traces; Python's the rest."""
    calls: list[bool] = []

    def counting(trace: RequestTrace, export: SpanExport) -> tuple[str, ...] | None:
        result = finish_head(trace, export)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(tracer_module, "finish_head", counting)
    tracer = _tracer(batch_spans=7, max_spans=40)
    _one_session(tracer)
    assert 25 < sum(calls) < len(calls) - 10
    assert tracer.export.dropped > 0
    assert tracer.export.full


def _ready() -> tuple[Tracer, NodeSession, Any]:
    """A tracer whose session has a batch with room, and a trace of that session to end."""
    tracer = _tracer()
    session = _session(tracer, "s-1")
    tracer.finish(_trace(tracer, (session,), 0, 1))  # (Python starts the batch)
    return tracer, session, _trace(tracer, (session,), 1, 2)


def test_it_ends_the_trace_as_the_tracer_does() -> None:
    tracer, session, trace = _ready()
    (batch,) = tracer.export.pending.values()
    own = trace.root.encoded_attributes
    assert finish_head(trace, tracer.export) == ("s-1",)
    assert trace.root.encoded_attributes == own + session.root_fields
    assert (batch.spans, len(batch.traces), tracer.export.pending_spans) == (5, 2, 5)
    assert session.in_flight == 0
    assert batch.traces[1] == trace_spans(trace.trace_id, trace.spans)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda t, s, tr: t.export.pending.clear(), id="no batch yet"),
        pytest.param(lambda t, s, tr: setattr(t.export, "batch_spans", 5), id="full after"),
        pytest.param(lambda t, s, tr: setattr(t.export, "max_spans", 4), id="past the bound"),
        pytest.param(lambda t, s, tr: setattr(s, "state", "stopped"), id="ended, last trace"),
        pytest.param(lambda t, s, tr: tr.tail.append(s), id="a tail session"),
        pytest.param(lambda t, s, tr: tr.head.append(s), id="two head sessions"),
        pytest.param(lambda t, s, tr: setattr(s, "in_flight", 2**70), id="an int too big"),
        pytest.param(lambda t, s, tr: setattr(s, "ids", ["s-1"]), id="ids not a tuple"),
        pytest.param(lambda t, s, tr: setattr(t.export, "pending_spans", 2.0), id="a float"),
        pytest.param(lambda t, s, tr: tr.spans.reverse(), id="root not first"),
    ],
)
def test_it_does_nothing_when_python_has_more_to_do(
    change: Callable[[Tracer, NodeSession, Any], None],
) -> None:
    tracer, session, trace = _ready()
    change(tracer, session, trace)
    before = (_state(tracer, [session]), trace.root.encoded_attributes)
    assert finish_head(trace, tracer.export) is None
    assert (_state(tracer, [session]), trace.root.encoded_attributes) == before


def test_an_ended_session_with_other_traces_in_flight_is_ended_in_c() -> None:
    tracer, session, trace = _ready()
    _trace(tracer, (session,), 2, 0)  # (still in flight)
    session.state = "completed"
    assert finish_head(trace, tracer.export) == ("s-1",)
    assert session.in_flight == 1
    assert not tracer.dirty - {"s-1"}


class _OwnAccess(NodeSession):
    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        return object.__getattribute__(self, name)


class _Export(SpanExport):
    """A subclass with a dict of its own: the base's slots still hold what C reads."""


def test_other_classes_take_the_python_path_or_their_slots() -> None:
    tracer, session, trace = _ready()
    own = _OwnAccess(session.definition, None, 1e12)  # its own attribute access: Python's
    own.in_flight = 1
    trace.head[0] = own
    assert finish_head(trace, tracer.export) is None
    assert finish_head(trace, object()) is None  # not an export
    assert finish_head(object(), tracer.export) is None  # type: ignore[arg-type]  # not a C trace
    export = _Export(node_resource=resource_pb2.Resource(), version="test")
    tracer = Tracer(export)
    session = _session(tracer, "s-1")
    tracer.finish(_trace(tracer, (session,), 0, 0))
    trace = _trace(tracer, (session,), 1, 0)
    assert finish_head(trace, export) == ("s-1",)
    assert export.pending_spans == 2


def test_a_span_c_refuses_goes_to_the_python_path() -> None:
    tracer, session, trace = _ready()
    trace.spans[1].attributes = {"huge": 2**70}  # beyond 64 bits: C leaves it to wire.py
    assert finish_head(trace, tracer.export) is None
    assert tracer.finish(trace) == ("s-1",)  # Python's path, wire.py encoding the trace
    (batch,) = tracer.export.pending.values()
    assert len(batch.traces) == 2
    assert session.in_flight == 0
    assert batch.traces[1] == wire.python_trace_spans(trace.trace_id, trace.spans)


def test_a_wrong_call_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="finish_head"):
        finish_head()  # type: ignore[call-arg]
