"""The tracer's hand-off of a finished trace: the sessions that kept it are on its root."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from dataplane.tracing.export import SpanExport
from dataplane.tracing.sessions import NodeSession, SessionDefinition
from dataplane.tracing.tracer import Tracer


def _no_facts() -> Any:
    raise AssertionError("no rule here needs the request's facts")


def _root_attributes(tracer: Tracer) -> dict[str, Any]:
    (batch,) = tracer.export.pending.values()
    (encoded,) = batch.traces
    spans = trace_pb2.ScopeSpans.FromString(encoded).spans
    (root,) = [span for span in spans if not span.parent_span_id]
    out: dict[str, Any] = {}
    for kv in root.attributes:
        value = kv.value
        if value.HasField("array_value"):
            out[kv.key] = [item.string_value for item in value.array_value.values]
        else:
            out[kv.key] = value.string_value
    return out


def _tracer() -> Tracer:
    return Tracer(SpanExport(node_resource=resource_pb2.Resource(), version="test"))


def _session(name: str) -> NodeSession:
    return NodeSession(SessionDefinition(session_id=name, max_samples=10), None, 1e12)


def test_one_session_is_named_on_the_root() -> None:
    tracer = _tracer()
    session = _session("s-1")
    trace = tracer.begin((session,), 1_000, None, _no_facts)
    assert trace is not None
    assert tracer.finish(trace) == ("s-1",)
    attributes = _root_attributes(tracer)
    assert attributes["gateway.session.id"] == "s-1"
    assert "gateway.session.ids" not in attributes
    assert session.in_flight == 0


def test_a_trace_kept_by_two_sessions_names_both() -> None:
    tracer = _tracer()
    first, second = _session("s-1"), _session("s-2")
    for _ in range(3):  # (the encoded names are kept per set of sessions: the same each time)
        tracer.export.pending.clear()
        trace = tracer.begin((first, second), 1_000, None, _no_facts)
        assert trace is not None
        assert tracer.finish(trace) == ("s-1", "s-2")
        attributes = _root_attributes(tracer)
        assert attributes["gateway.session.id"] == "s-1"
        assert attributes["gateway.session.ids"] == ["s-1", "s-2"]
    assert (first.taken, second.taken, first.in_flight) == (3, 3, 0)


def _reported(tracer: Tracer) -> list[tuple[str, int, int]]:
    return [(p.session_id, p.samples, p.state) for p in tracer.progress()]


def test_progress_reports_a_session_when_its_samples_or_state_move() -> None:
    from protos.activetrace.cluster.v1 import cluster_pb2 as pb

    tracer = _tracer()
    session = tracer.sessions.start(SessionDefinition(session_id="s-1", max_samples=5))
    active, completed = pb.SESSION_STATE_ACTIVE, pb.SESSION_STATE_COMPLETED
    assert _reported(tracer) == [("s-1", 0, active)]  # started
    assert _reported(tracer) == []
    for _ in range(3):
        trace = tracer.begin((session,), 1_000, None, _no_facts)
        assert trace is not None
        tracer.finish(trace)
    assert _reported(tracer) == [("s-1", 3, active)]
    assert _reported(tracer) == []  # nothing moved
    in_flight = [tracer.begin((session,), 1_000, None, _no_facts) for _ in range(2)]
    assert session.state == "completed"  # the fifth sample filled it
    assert _reported(tracer) == []  # ended: reported once its traces are exported
    for trace in in_flight:
        assert trace is not None
        tracer.finish(trace)
    assert _reported(tracer) == [("s-1", 5, completed)]
    assert _reported(tracer) == []


def test_progress_reports_a_count_the_control_plane_raised_on_a_refresh() -> None:
    tracer = _tracer()
    definition = SessionDefinition(session_id="s-1", max_samples=10)
    tracer.sessions.start(definition)
    tracer.progress()
    tracer.sessions.start(SessionDefinition(session_id="s-1", max_samples=10, samples_taken=4))
    assert [(p.session_id, p.samples) for p in tracer.progress()] == [("s-1", 4)]
