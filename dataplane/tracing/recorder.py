"""The spans of one traced request, and W3C trace context in and out."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dataplane.tracing.sessions import NodeSession
from dataplane.tracing.spans import KIND_INTERNAL, KIND_SERVER, Span, new_trace_id

__all__ = [
    "PyRequestTrace",
    "PySpanMaker",
    "RequestTrace",
    "format_traceparent",
    "parse_traceparent",
    "python_traceparent_header",
    "traceparent_header",
]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


def parse_traceparent(value: str) -> tuple[bytes, bytes] | None:
    """(trace_id, parent span_id) from a valid W3C ``traceparent``; None when invalid."""
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_hex == "0" * 32 or span_hex == "0" * 16:
        return None
    return bytes.fromhex(trace_hex), bytes.fromhex(span_hex)


def format_traceparent(trace_id: bytes, span_id: bytes) -> str:
    """A sampled W3C ``traceparent`` for the upstream request."""
    return f"00-{trace_id.hex()}-{span_id.hex()}-01"


def python_traceparent_header(trace_id: bytes, span: Span | bytes) -> bytes:
    """:func:`format_traceparent` as the header value's bytes, for ``span`` (or a span ID):
    the reference for :func:`traceparent_header`, which is ``_wire.traceparent`` when the
    extension is built (a traced request sends one per upstream try; given the span, C reads
    its ID without making the bytes ``span.span_id`` would)."""
    return format_traceparent(trace_id, span if isinstance(span, bytes) else span.span_id).encode()


traceparent_header: Callable[[bytes, Span | bytes], bytes] = python_traceparent_header
if not TYPE_CHECKING:
    with contextlib.suppress(ImportError):  # not built: the Python version
        from dataplane.tracing._wire import traceparent as traceparent_header


class PySpanMaker:
    """A trace's ``span`` in Python: what ``_wire.RequestTrace.span`` does in C (without a
    Python frame per span), used when the extension is not built and tested against it."""

    __slots__ = ("span_type", "spans")

    def __init__(self, spans: list[Span], span_type: type[Span]) -> None:
        self.spans = spans
        self.span_type = span_type

    def __call__(
        self,
        name: str,
        parent: Span,
        start_ns: int | None = None,
        kind: int = KIND_INTERNAL,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        span = self.span_type(name, parent.span_id, start_ns, kind, attributes)
        self.spans.append(span)
        return span


class PyRequestTrace:
    """Collects the spans of one request for the sessions that (may) keep it.

    ``head`` sessions kept the request when it arrived; ``tail`` sessions decide at the log
    phase from response fields. ``_wire.RequestTrace`` is the same in C (made once per traced
    request without a Python frame), used when the extension is built; tests run both.
    """

    __slots__ = (
        "body_max_bytes",
        "capture_body",
        "capture_headers",
        "head",
        "logs",
        "root",
        "span",
        "spans",
        "tail",
        "trace_id",
    )

    def __init__(
        self,
        *,
        head: list[NodeSession],
        tail: list[NodeSession],
        start_ns: int,
        parent: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.head = head
        self.tail = tail
        self.trace_id = parent[0] if parent is not None else new_trace_id()
        self.root = Span("HTTP", parent[1] if parent is not None else b"", start_ns, KIND_SERVER)
        self.spans: list[Span] = [self.root]
        self.span = PySpanMaker(self.spans, Span)
        """``span(name, parent, start_ns=None, kind=KIND_INTERNAL, attributes=None)``: start a
        child span of ``parent`` (at ``start_ns``, or now) and add it to the trace."""
        self.logs: list[tuple[int, str, str, str]] = []  # (time, level, logger, message)
        capture_headers = capture_body = False
        body_max_bytes = 0
        for session in head + tail:  # one pass (a request usually has one session)
            capture_headers = capture_headers or session.capture_headers
            capture_body = capture_body or session.capture_body
            if session.body_max_bytes > body_max_bytes:
                body_max_bytes = session.body_max_bytes
            session.in_flight += 1
        self.capture_headers = capture_headers
        self.capture_body = capture_body
        self.body_max_bytes = body_max_bytes

    def sessions(self) -> list[NodeSession]:
        """Every session involved (kept or still deciding)."""
        return self.head + self.tail


if TYPE_CHECKING:
    RequestTrace = PyRequestTrace
else:
    try:
        from dataplane.tracing._wire import RequestTrace
    except ImportError:  # not built
        RequestTrace = PyRequestTrace
