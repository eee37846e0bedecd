"""``_wire.finish_trace``: the end of a traced request (``_finish_root``, then ``Tracer.finish``)
in one C call.

What it leaves behind must be exactly what the two Python steps leave (the root, the batches,
the counts, the session), and it must hand over at the right point: nothing touched (None) when
``finish_root`` leaves the request to Python, the root written (False) when the trace has log
records or header capture or ``finish_head`` leaves the end to Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dataplane import proxy
from dataplane.exchange import Exchange
from dataplane.router import RouteMatch
from dataplane.tracing import tracer as tracer_module
from dataplane.tracing._wire import finish_trace
from dataplane.tracing.sessions import NodeSession
from dataplane.tracing.tracer import Tracer, python_finish_head
from tests.dataplane.proxy.test_finish_root import _as_own_access, _exchange, _match
from tests.dataplane.tracing.test_finish_head import TRACEPARENT, _session, _tracer


def _traced(tracer: Tracer, session: NodeSession, serial: int, **fields: Any) -> Exchange:
    """An ended request that ``session`` traces, its IDs and times fixed by ``serial``."""
    exchange = _exchange(**fields)
    trace = tracer.begin((session,), 1_000 + serial, TRACEPARENT, _no_facts)  # (its trace ID)
    assert trace is not None
    trace.root.span_id = serial.to_bytes(8, "big")
    child = trace.span("gateway.router", trace.root, 2_000 + serial)
    child.span_id = (serial * 100 + 1).to_bytes(8, "big")
    child.end(3_000 + serial)
    trace.root.end(13_000_000)
    exchange.trace = trace
    return exchange


def _no_facts(*_: Any) -> Any:
    raise AssertionError("no rule here needs the request's facts")


def _end(exchange: Exchange, match: RouteMatch | None, tracer: Tracer, fast: bool) -> Any:
    """What Proxy.__call__ does at the end of a traced request (fast: with finish_trace)."""
    trace = exchange.trace
    assert trace is not None
    done = finish_trace(exchange, match, trace, tracer.export) if fast else None
    if not done:
        if done is None:
            proxy._finish_root(exchange, match)
        else:
            proxy._root_extras(exchange, trace)
        tracer.finish(trace)
    return done


@pytest.fixture
def python_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The reference: the two Python steps with their C parts replaced by Python's."""
    with monkeypatch.context() as patch:
        patch.setattr(proxy, "finish_root", lambda exchange, match: False)
        patch.setattr(tracer_module, "finish_head", python_finish_head)
        yield patch


def _state(tracer: Tracer, session: NodeSession, exchanges: list[Exchange]) -> dict[str, Any]:
    export = tracer.export
    roots = []
    for exchange in exchanges:
        assert exchange.trace is not None
        root = exchange.trace.root
        events = [(e.name, e.time_ns, e.attributes) for e in root.events or []]
        roots.append((root.name, root.encoded_attributes, dict(root.attributes), events))
    return {
        "pending": {ids: (b.spans, list(b.traces)) for ids, b in export.pending.items()},
        "full": [(b.session_ids, b.spans, list(b.traces)) for b in export.full],
        "counts": (export.pending_spans, export.unacked_spans, export.kept_traces),
        "traced": tracer.traced,
        "session": (session.taken, session.in_flight, session.state),
        "roots": roots,
    }


CASES: dict[str, tuple[dict[str, Any], list[Any]]] = {
    # (the exchange's fields; what finish_trace returns for each of 12 requests: the first
    # starts the batch, and one of 7 spans fills it after the third: Python's both times)
    "plain": ({}, [False, True, True, False, True, True, False, True, True, False, True, True]),
    "log records": ({"logs": True}, [False] * 12),
    "header capture": ({"capture": True}, [False] * 12),
    "another exchange class": ({"other_class": True}, [None] * 12),
}


def _scenario(case: str, fast: bool) -> tuple[dict[str, Any], list[Any]]:
    fields, _ = CASES[case]
    tracer = _tracer(batch_spans=7, max_spans=1_000)
    session = _session(tracer, "s-1")
    match = _match(paths=["/orders"])
    exchanges, results = [], []
    for serial in range(12):
        exchange = _traced(tracer, session, serial, query=b"a=1&apikey=s3cret")
        assert exchange.trace is not None
        if fields.get("logs"):
            exchange.trace.logs.append((5_000 + serial, "WARNING", "plugin", f"note {serial}"))
        if fields.get("capture"):
            exchange.trace.capture_headers = True
        if fields.get("other_class"):
            exchange = _as_own_access(exchange)
        results.append(_end(exchange, match, tracer, fast))
        exchanges.append(exchange)
    return _state(tracer, session, exchanges), results


@pytest.mark.parametrize("case", list(CASES))
def test_c_ends_the_request_as_the_python_steps_do(
    case: str, python_only: pytest.MonkeyPatch
) -> None:
    python_only.undo()  # (C first, then the reference)
    c_state, results = _scenario(case, fast=True)
    assert results == CASES[case][1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(proxy, "finish_root", lambda exchange, match: False)
        patch.setattr(tracer_module, "finish_head", python_finish_head)
        python_state, _ = _scenario(case, fast=False)
    assert c_state == python_state
    assert c_state["traced"] == 12


def test_nothing_is_touched_when_the_root_is_left_to_python() -> None:
    tracer = _tracer()
    session = _session(tracer, "s-1")
    exchange = _traced(tracer, session, 1)
    assert exchange.trace is not None
    root = exchange.trace.root
    before = (root.name, root.encoded_attributes, session.in_flight, tracer.traced)
    assert finish_trace(exchange, None, exchange.trace, tracer.export) is None  # (no route)
    assert (root.name, root.encoded_attributes, session.in_flight, tracer.traced) == before


def test_what_is_not_a_trace_is_left_to_python_once_the_root_is_written() -> None:
    tracer = _tracer()
    session = _session(tracer, "s-1")
    exchange = _traced(tracer, session, 1)
    assert exchange.trace is not None
    stand_in: Any = object()
    assert finish_trace(exchange, _match(paths=["/orders"]), stand_in, tracer.export) is False
    assert exchange.trace.root.name == "GET /orders"
    assert session.in_flight == 1
    assert tracer.traced == 0


def test_a_wrong_call_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="finish_trace"):
        finish_trace()  # type: ignore[call-arg]
