"""A request's trace: the C ``_wire.RequestTrace`` behaves as the Python ``PyRequestTrace``."""

from __future__ import annotations

from typing import Any

import pytest

from dataplane.tracing import recorder
from dataplane.tracing.recorder import PyRequestTrace, RequestTrace
from dataplane.tracing.sessions import NodeSession, SessionDefinition
from dataplane.tracing.spans import KIND_CLIENT, KIND_SERVER, Span

TRACES = [RequestTrace, PyRequestTrace]


def session(name: str, capture: tuple[str, ...] = (), body_max_bytes: int = 4096) -> NodeSession:
    definition = SessionDefinition(session_id=name, capture=capture, body_max_bytes=body_max_bytes)
    return NodeSession(definition, None, 0.0)


def test_the_c_trace_is_what_the_node_uses() -> None:
    from dataplane.tracing import _wire

    assert RequestTrace is _wire.RequestTrace  # type: ignore[comparison-overlap]
    assert recorder.RequestTrace is _wire.RequestTrace  # type: ignore[comparison-overlap]


@pytest.mark.parametrize("cls", TRACES)
def test_a_new_trace_has_its_root_and_a_random_id(cls: Any) -> None:
    trace = cls(head=[], tail=[], start_ns=123)
    assert len(trace.trace_id) == 16
    assert trace.trace_id != cls(head=[], tail=[], start_ns=1).trace_id
    root = trace.root
    assert type(root) is Span
    assert (root.name, root.kind, root.start_ns, root.end_ns, root.parent_id) == (
        "HTTP",
        KIND_SERVER,
        123,
        0,
        b"",
    )
    assert trace.spans == [root]
    assert trace.logs == []
    assert (trace.capture_headers, trace.capture_body, trace.body_max_bytes) == (False, False, 0)


@pytest.mark.parametrize("cls", TRACES)
def test_an_incoming_parent_is_continued(cls: Any) -> None:
    trace = cls(head=[], tail=[], start_ns=5, parent=(b"\x0a" * 16, b"\x0b" * 8))
    assert trace.trace_id == b"\x0a" * 16
    assert trace.root.parent_id == b"\x0b" * 8


def test_a_span_id_keeps_its_byte_order_in_the_span_the_encoder_and_traceparent() -> None:
    from opentelemetry.proto.trace.v1 import trace_pb2

    from dataplane.tracing import wire
    from dataplane.tracing.recorder import python_traceparent_header, traceparent_header

    parent = bytes(range(1, 9))  # (not a palindrome: a byte-order slip shows)
    trace = RequestTrace(head=[], tail=[], start_ns=5, parent=(b"\x0a" * 16, parent))
    root = trace.root
    root.end(6)
    assert root.parent_id == parent
    (encoded,) = trace_pb2.ScopeSpans.FromString(wire.trace_spans(trace.trace_id, [root])).spans
    assert (encoded.parent_span_id, encoded.span_id) == (parent, root.span_id)
    assert traceparent_header(trace.trace_id, root) == python_traceparent_header(
        trace.trace_id, root.span_id
    )
    assert traceparent_header(trace.trace_id, parent).endswith(b"-0102030405060708-01")


@pytest.mark.parametrize("cls", TRACES)
def test_sessions_join_their_capture_settings_and_count_in_flight(cls: Any) -> None:
    plain, headers = session("a", body_max_bytes=100), session("b", ("headers",), 50)
    body = session("c", ("body",), 2048)
    trace = cls(head=[plain, headers], tail=[body], start_ns=1)
    assert (trace.capture_headers, trace.capture_body, trace.body_max_bytes) == (True, True, 2048)
    assert [s.in_flight for s in (plain, headers, body)] == [1, 1, 1]
    assert trace.sessions() == [plain, headers, body]
    assert (trace.head, trace.tail) == ([plain, headers], [body])
    cls(head=[plain], tail=[], start_ns=1)
    assert plain.in_flight == 2
    only_plain = cls(head=[plain], tail=[], start_ns=1)
    assert (only_plain.capture_headers, only_plain.capture_body) == (False, False)
    assert only_plain.body_max_bytes == 100


class _Slotted:
    """A session of another class with the same slots (C reads NodeSession's by offset)."""

    __slots__ = ("body_max_bytes", "capture_body", "capture_headers", "in_flight")
    body_max_bytes: int
    capture_body: bool
    capture_headers: bool
    in_flight: int


class _Counting:
    """A session whose in-flight count is a property (C must call it, not write a slot)."""

    capture_headers = True
    capture_body = False
    body_max_bytes = 7

    def __init__(self) -> None:
        self.writes: list[int] = []

    @property
    def in_flight(self) -> int:
        return len(self.writes)

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self.writes.append(value)


@pytest.mark.parametrize("cls", TRACES)
def test_any_session_class_joins_as_node_sessions_do(cls: Any) -> None:
    node = session("a", ("body",), 10)
    slotted = _Slotted()
    slotted.capture_headers, slotted.capture_body, slotted.body_max_bytes = True, False, 20
    with pytest.raises(AttributeError, match="in_flight"):  # a slot never set
        cls(head=[node, slotted], tail=[], start_ns=1)
    slotted.in_flight = 5
    counting = _Counting()
    trace = cls(head=[node, slotted, counting], tail=[node], start_ns=1)
    assert (trace.capture_headers, trace.capture_body, trace.body_max_bytes) == (True, True, 20)
    assert (slotted.in_flight, counting.writes) == (6, [1])
    assert node.in_flight == 3  # (1 from the call that raised: it joined before the slot failed)


class _Intercepting(_Slotted):
    """Slots, and its own attribute access (C must not read the slots around it)."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name == "body_max_bytes":
            return 99
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value * 10 if name == "in_flight" else value)


@pytest.mark.parametrize("cls", TRACES)
def test_a_session_class_with_its_own_attribute_access_is_asked(cls: Any) -> None:
    intercepting = _Intercepting()
    intercepting.capture_headers, intercepting.capture_body = False, True
    intercepting.body_max_bytes, intercepting.in_flight = 1, 1
    trace = cls(head=[intercepting], tail=[], start_ns=1)
    assert (trace.body_max_bytes, intercepting.in_flight) == (99, 110)  # (1 stored as 10)


# A class holding the member descriptors of another class's slots, which do not apply to it
# (C reading at their offsets would read past the object: a crash before it checked).
_Borrowing = type("_Borrowing", (), {name: vars(_Slotted)[name] for name in _Slotted.__slots__})


@pytest.mark.parametrize("cls", TRACES)
def test_another_class_s_slot_descriptors_are_refused_as_getattr_refuses_them(cls: Any) -> None:
    with pytest.raises(TypeError, match="doesn't apply"):
        cls(head=[_Borrowing()], tail=[], start_ns=1)


@pytest.mark.parametrize("cls", TRACES)
def test_a_session_class_changed_after_use_is_read_as_it_is_now(cls: Any) -> None:
    class Changing:
        __slots__ = ("body_max_bytes", "capture_body", "capture_headers", "in_flight")
        body_max_bytes: int
        capture_body: bool
        capture_headers: bool
        in_flight: int

    changing = Changing()
    changing.capture_headers, changing.capture_body, changing.body_max_bytes = False, False, 1
    changing.in_flight = 0
    cls(head=[changing], tail=[], start_ns=1)
    assert changing.in_flight == 1
    setattr(Changing, "capture_headers", property(lambda self: True))  # noqa: B010
    assert cls(head=[changing], tail=[], start_ns=1).capture_headers is True


@pytest.mark.parametrize("cls", TRACES)
def test_span_adds_a_child(cls: Any) -> None:
    trace = cls(head=[], tail=[], start_ns=1)
    child = trace.span("gateway.upstream", trace.root, 7, KIND_CLIENT, {"a": 1})
    grandchild = trace.span("gateway.dns", child, start_ns=9)
    assert trace.spans == [trace.root, child, grandchild]
    assert (child.parent_id, grandchild.parent_id) == (trace.root.span_id, child.span_id)
    assert (child.start_ns, child.kind, child.attributes) == (7, KIND_CLIENT, {"a": 1})


@pytest.mark.parametrize("cls", TRACES)
def test_fields_are_writable(cls: Any) -> None:
    trace = cls(head=[], tail=[], start_ns=1)
    trace.capture_body = True
    trace.body_max_bytes = 10
    trace.logs.append((1, "INFO", "x", "hello"))
    assert (trace.capture_body, trace.body_max_bytes, len(trace.logs)) == (True, 10, 1)


def test_the_c_trace_refuses_bad_arguments() -> None:
    with pytest.raises(TypeError):
        RequestTrace([], [], 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RequestTrace(head=[], tail=[])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RequestTrace(head=[], tail=[], start_ns=1, other=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RequestTrace(head=(), tail=[], start_ns=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RequestTrace(head=[], tail=[], start_ns=1, parent=b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="8 bytes"):
        RequestTrace(head=[], tail=[], start_ns=1, parent=(b"\x01" * 16, b"\x02"))
    with pytest.raises(AttributeError):
        RequestTrace(head=[object()], tail=[], start_ns=1)  # type: ignore[list-item]
    arguments: dict[str, Any] = {"head": [], "tail": [], "start_ns": 3}
    assert RequestTrace(**arguments).root.start_ns == 3  # (type.__call__ with a dict)


def test_keywords_made_at_run_time_are_matched_by_text() -> None:
    """Keywords written at a call site are interned (matched by identity); others by text."""
    start, attributes = "".join(["start", "_ns"]), "".join(["attri", "butes"])
    at_four: dict[str, Any] = {start: 4}
    trace = RequestTrace(head=[], tail=[], **at_four)
    given: dict[str, Any] = {attributes: {"k": 1}, start: 6}
    child = trace.span("c", trace.root, **given)
    child.set_error(**{"".join(["error", "_type"]): "x", "".join(["mess", "age"]): "m"})
    child.record_exception(ValueError("v"), **{"".join(["time", "_ns"]): 9})
    assert (trace.root.start_ns, child.start_ns, child.attributes) == (
        4,
        6,
        {"k": 1, "error.type": "x"},
    )
    assert (child.status_message, child.events[0].time_ns) == ("m", 9)  # type: ignore[index]
