"""Spans as plain objects, cheap to build on the request path (no OTel SDK here).

Times are unix nanoseconds from one monotonic-anchored clock per node (``now_ns``), so a child
always nests inside its parent even if the wall clock is stepped.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any, Final

__all__ = [
    "KIND_CLIENT",
    "KIND_INTERNAL",
    "KIND_SERVER",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_UNSET",
    "PySpan",
    "Span",
    "SpanEvent",
    "exception_event",
    "new_span_id",
    "new_trace_id",
    "now_ns",
]

# OTLP enum values (opentelemetry.proto.trace.v1.Span.SpanKind / Status.StatusCode).
KIND_INTERNAL: Final = 1
KIND_SERVER: Final = 2
KIND_CLIENT: Final = 3
STATUS_UNSET: Final = 0
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2

_OFFSET_NS: Final = time.time_ns() - time.perf_counter_ns()
_perf_counter_ns = time.perf_counter_ns
_getrandbits = random.getrandbits


def now_ns() -> int:
    """Unix nanoseconds, monotonic within this process."""
    return _perf_counter_ns() + _OFFSET_NS


def new_trace_id() -> bytes:
    """16 random bytes, never all zero (invalid per W3C)."""
    return (_getrandbits(128) or 1).to_bytes(16, "big")


_python_new_trace_id = new_trace_id  # replaced below by the C generator when it is built


def new_span_id() -> bytes:
    """8 random bytes, never all zero."""
    return (_getrandbits(64) or 1).to_bytes(8, "big")


class SpanEvent:
    """A timestamped event on a span (e.g. an exception)."""

    __slots__ = ("attributes", "name", "time_ns")

    def __init__(self, name: str, time_ns: int, attributes: dict[str, Any]) -> None:
        self.name = name
        self.time_ns = time_ns
        self.attributes = attributes


def exception_event(exc: BaseException, time_ns: int) -> SpanEvent:
    """The OTel ``exception`` event of ``exc`` (what ``record_exception`` adds)."""
    return SpanEvent(
        "exception",
        time_ns,
        {
            "exception.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "exception.message": str(exc),
        },
    )


class PySpan:
    """One operation of a traced request, in Python: what ``_wire.SpanBase`` is in C, used
    when the extension is not built (and tested against it).

    ``Span(name, parent_id, start_ns=None, kind=KIND_INTERNAL, attributes=None)``: a random
    8-byte ``span_id``, started now unless ``start_ns`` is given; ``end()`` closes it.
    """

    __slots__ = (
        "attributes",
        "encoded_attributes",
        "end_ns",
        "events",
        "kind",
        "name",
        "parent_id",
        "span_id",
        "start_ns",
        "status_code",
        "status_message",
    )

    def __init__(
        self,
        name: str,
        parent_id: bytes,
        start_ns: int | None = None,
        kind: int = KIND_INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """A started span (``start_ns`` None: now)."""
        self.name = name
        self.kind = kind
        self.span_id = new_span_id()
        self.parent_id = parent_id
        self.start_ns = start_ns if start_ns is not None else now_ns()
        self.end_ns = 0
        self.attributes: dict[str, Any] = attributes if attributes is not None else {}
        # Attributes already encoded as OTLP Span.attributes fields (root.py writes the root's
        # standard ones so), sent after those of the dict.
        self.encoded_attributes = b""
        self.events: list[SpanEvent] | None = None
        self.status_code = STATUS_UNSET
        self.status_message = ""

    def end(self, end_ns: int | None = None) -> None:
        """Close the span (now, or at ``end_ns``); ending twice keeps the first end."""
        if not self.end_ns:
            self.end_ns = end_ns if end_ns is not None else now_ns()

    def set_error(self, error_type: str, message: str = "") -> None:
        """Mark the span failed with an ``error.type``."""
        self.status_code = STATUS_ERROR
        self.status_message = message
        self.attributes["error.type"] = error_type

    def record_exception(self, exc: BaseException, time_ns: int | None = None) -> None:
        """Add an OTel ``exception`` event."""
        if self.events is None:
            self.events = []
        self.events.append(exception_event(exc, time_ns if time_ns is not None else now_ns()))


if TYPE_CHECKING:
    Span = PySpan
else:
    try:  # built by `pip install` (hatch_build.py); hot on traced requests: no Python frames
        from dataplane.tracing._wire import SpanBase as Span
        from dataplane.tracing._wire import set_clock_offset, set_exception_event
        from dataplane.tracing._wire import trace_id as new_trace_id  # the span IDs' generator
    except ImportError:
        Span = PySpan
    else:
        set_clock_offset(_OFFSET_NS)  # C spans read CLOCK_MONOTONIC, as perf_counter_ns does
        set_exception_event(exception_event)
        from dataplane.tracing._wire import now_ns  # the same clock, without a Python frame
