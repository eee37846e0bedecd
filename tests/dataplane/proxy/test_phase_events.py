"""The upstream phase spans from the transport's trace events: the C ``_wire.PhaseEvents`` and
the Python ``_TransportEvents`` it accelerates turn the same event sequences into the same spans
(names, parents, kinds, attributes, status, ended or not)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dataplane import proxy
from dataplane.tracing.recorder import RequestTrace
from dataplane.tracing.spans import KIND_CLIENT, STATUS_ERROR, Span
from dataplane.transport import events as transport_events
from dataplane.transport.events import BODY, CONNECT_TCP, DNS, HEAD, REUSED, SEND, START_TLS

Events = list[tuple[str, dict[str, Any]]]

REUSED_CONNECTION: Events = [
    (REUSED, {"peer": ("10.0.0.7", 8080)}),
    (SEND + ".started", {}),
    (SEND + ".complete", {}),
    (HEAD + ".started", {}),
    (HEAD + ".complete", {"status_code": 200}),
    (BODY + ".started", {}),
    (BODY + ".complete", {"bytes": 42}),
]
NEW_TLS_CONNECTION: Events = [
    (DNS + ".started", {"host": "api.internal"}),
    (DNS + ".complete", {"host": "api.internal", "cache_hit": False, "answers": ["10.0.0.7"]}),
    (CONNECT_TCP + ".started", {"host": "api.internal", "port": 443}),
    (CONNECT_TCP + ".complete", {"peer": ("10.0.0.7", 443)}),
    (START_TLS + ".started", {"server_name": "api.internal"}),
    (START_TLS + ".complete", {"tls_version": "TLSv1.3", "server_name": "api.internal"}),
    *REUSED_CONNECTION[1:],
]
CONNECT_REFUSED: Events = [
    (DNS + ".started", {"host": "api.internal"}),
    (DNS + ".complete", {}),  # annotated phase, empty info: nothing to annotate
    (CONNECT_TCP + ".started", {"host": "api.internal", "port": 80}),
    (CONNECT_TCP + ".failed", {"error_type": "connect_error", "error": "refused"}),
]
READ_TIMEOUT: Events = [
    *REUSED_CONNECTION[:4],
    (HEAD + ".failed", {"error_type": "read_timeout", "error": "timed out"}),
]
ODD: Events = [
    (BODY + ".complete", {"bytes": 1}),  # never started: ignored
    ("http11.something_new.started", {}),  # unknown: ignored
    (SEND + ".started", {}),
    (SEND + ".started", {}),  # started twice: the first stays open
    (SEND + ".complete", {}),
    (SEND + ".complete", {}),  # nothing open any more
    (HEAD + ".started", {}),  # never completed: stays open
]

ODD_INFO: Events = [  # C hands what it does not expect to Python: the same result
    (REUSED, {}),
    (REUSED, {"peer": None}),
    (REUSED, {"peer": ()}),
    (REUSED, {"peer": "10.0.0.9"}),
    (REUSED, {"peer": ("", 1)}),
    (BODY + ".started", {}),
    (BODY + ".complete", {"bytes": "17"}),
    (BODY + ".started", {}),
    (BODY + ".complete", {}),
    (BODY + ".started", {}),
    (BODY + ".failed", {"error_type": "read_error", "error": "reset", "bytes": 3}),
]

# The transport's own (interned) event objects, which C finds by identity; the lists above
# are equal strings made here, which C finds through its dict.
AS_THE_TRANSPORT_SENDS: Events = [
    (REUSED, {"peer": ("10.0.0.7", 8080)}),
    (transport_events.SEND_STARTED, {}),
    (transport_events.SEND_COMPLETE, {}),
    (transport_events.HEAD_STARTED, {}),
    (transport_events.HEAD_COMPLETE, {}),
    (transport_events.BODY_STARTED, {}),
    (transport_events.BODY_COMPLETE, {"bytes": 42}),
]


def _record(make: Callable[[RequestTrace, Span], Any], events: Events) -> list[tuple[Any, ...]]:
    trace = RequestTrace(head=[], tail=[], start_ns=1)
    upstream = trace.span("gateway.upstream", trace.root, None, KIND_CLIENT, {"server.port": 80})
    on_event = make(trace, upstream)
    for event, info in events:
        on_event(event, info)
    parents = {span.span_id: span.name for span in trace.spans}
    return [
        (
            span.name,
            parents.get(span.parent_id),
            span.kind,
            dict(span.attributes),
            span.status_code,
            span.status_message,
            bool(span.end_ns),
            type(span),
        )
        for span in trace.spans
    ]


def _python(trace: RequestTrace, upstream: Span) -> Any:
    return proxy._TransportEvents(trace, upstream).on_event


def _c(trace: RequestTrace, upstream: Span) -> Any:
    assert proxy._CPhaseEvents is not None, "the C extension is not built"
    return proxy._CPhaseEvents(trace.spans, upstream)


@pytest.mark.parametrize(
    "events",
    [
        REUSED_CONNECTION,
        NEW_TLS_CONNECTION,
        CONNECT_REFUSED,
        READ_TIMEOUT,
        ODD,
        ODD_INFO,
        AS_THE_TRANSPORT_SENDS,
    ],
    ids=["reused", "new-tls", "connect-refused", "read-timeout", "odd", "odd-info", "interned"],
)
def test_c_and_python_make_the_same_spans(events: Events) -> None:
    assert _record(_c, events) == _record(_python, events)


def test_interned_and_equal_event_names_make_the_same_spans() -> None:
    assert REUSED_CONNECTION[1][0] is not transport_events.SEND_STARTED  # (made here)
    equal = [(event, info) for event, info in REUSED_CONNECTION if event != HEAD + ".complete"]
    interned = [(e, i) for e, i in AS_THE_TRANSPORT_SENDS if e != transport_events.HEAD_COMPLETE]
    assert _record(_c, interned) == _record(_c, equal)


def test_what_the_spans_are() -> None:
    spans = {row[0]: row for row in _record(_c, NEW_TLS_CONNECTION)}
    assert spans["gateway.dns"][1:3] == ("gateway.upstream", KIND_CLIENT)
    assert spans["gateway.dns"][3] == {
        "dns.question.name": "api.internal",
        "gateway.dns.cache_hit": False,
        "gateway.dns.answers": ["10.0.0.7"],
    }
    assert spans["gateway.upstream.tls"][3]["tls.protocol.version"] == "TLSv1.3"
    assert spans["gateway.upstream.read_response"][3] == {"http.response.body.size": 42}
    phases = [row for row in spans.values() if row[1] == "gateway.upstream"]
    assert len(phases) == 6
    assert all(row[6] for row in phases)  # every phase ended
    assert spans["gateway.upstream.connect"][3] == {
        "network.peer.address": "10.0.0.7",
        "gateway.connection.reused": False,
    }
    reused = {row[0]: row for row in _record(_c, REUSED_CONNECTION)}
    assert reused["gateway.upstream"][3] == {
        "server.port": 80,
        "gateway.connection.reused": True,
        "network.peer.address": "10.0.0.7",
    }

    refused = {row[0]: row for row in _record(_c, CONNECT_REFUSED)}
    connect = refused["gateway.upstream.connect"]
    assert (connect[3]["error.type"], connect[4], connect[5], connect[6]) == (
        "connect_error",
        STATUS_ERROR,
        "refused",
        True,
    )


def test_the_proxy_uses_c_when_it_is_built() -> None:
    trace = RequestTrace(head=[], tail=[], start_ns=1)
    upstream = trace.span("gateway.upstream", trace.root)
    assert proxy.phase_events is proxy._CPhaseEvents
    on_event = proxy.phase_events(trace, upstream)  # a trace, or its spans list as below
    on_event(SEND + ".started", {})
    assert trace.spans[-1].name == "gateway.upstream.send_request"
    fallback: Any = proxy.python_phase_events(trace, upstream)
    assert isinstance(fallback.__self__, proxy._TransportEvents)


def test_bad_arguments_are_type_errors() -> None:
    assert proxy._CPhaseEvents is not None
    trace = RequestTrace(head=[], tail=[], start_ns=1)
    with pytest.raises(TypeError):
        proxy._CPhaseEvents(trace.spans, "not a span")  # type: ignore[arg-type]
    on_event = proxy._CPhaseEvents(trace.spans, trace.root)
    with pytest.raises(TypeError):
        on_event(SEND + ".started")  # type: ignore[call-arg]


@pytest.mark.parametrize("make", [_python, _c], ids=["python", "c"])
def test_the_upstream_span_s_id_and_attributes_cannot_be_deleted(
    make: Callable[[RequestTrace, Span], Any],
) -> None:
    trace = RequestTrace(head=[], tail=[], start_ns=1)
    upstream = trace.span("gateway.upstream", trace.root)
    on_event = make(trace, upstream)
    with pytest.raises(AttributeError):  # the C struct keeps its (lazily made) attribute dict
        del upstream.attributes
    with pytest.raises(AttributeError):  # and its ID, an integer in the struct
        del upstream.span_id
    on_event(REUSED, {"peer": ("10.0.0.7", 80)})
    on_event(SEND + ".started", {})
    assert upstream.attributes["gateway.connection.reused"] is True
    assert trace.spans[-1].parent_id == upstream.span_id
