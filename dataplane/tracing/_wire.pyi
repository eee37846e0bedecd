from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dataplane.tracing.recorder import PyRequestTrace
from dataplane.tracing.sessions import NodeSession
from dataplane.tracing.spans import Span, SpanEvent

def trace_spans(trace_id: bytes, spans: Sequence[Span], /) -> bytes: ...
def attribute_fields(keys: tuple[str, ...], values: tuple[Any, ...], /) -> bytes: ...
def set_clock_offset(offset_ns: int, /) -> None: ...
def now_ns() -> int: ...
def trace_id() -> bytes: ...
def set_exception_event(factory: Callable[[BaseException, int], SpanEvent], /) -> None: ...
def traceparent(trace_id: bytes, span: Span | bytes, /) -> bytes: ...
def write_root(
    root: Span,
    end_ns: int,
    values: tuple[Any, ...],
    route: Mapping[str, Any],
    route_encoded: bytes = b"",
    /,
) -> None: ...
def finish_root(exchange: Any, match: Any, /) -> bool: ...
def begin_head(
    candidates: tuple[NodeSession, ...],
    start_ns: int,
    traceparent: bytes | None,
    router_end_ns: int = ...,
    router_fields: bytes = ...,
    /,
) -> RequestTrace | None: ...
def finish_head(trace: RequestTrace | PyRequestTrace, export: Any, /) -> tuple[str, ...] | None: ...
def finish_trace(
    exchange: Any, match: Any, trace: RequestTrace | PyRequestTrace, export: Any, /
) -> bool | None: ...
def start_upstream(
    trace: RequestTrace | PyRequestTrace,
    parent: Span,
    name: str,
    kind: int,
    keys: tuple[str, ...],
    values: tuple[Any, ...],
    /,
) -> tuple[Span, bytes, PhaseEvents] | None: ...
def upstream_answered(span: Span, status: int, peer: Any, /) -> bool: ...
def set_fallback(name: str, version: Callable[..., Any] | None, /) -> None: ...
def set_phase_table(
    table: dict[str, tuple[int, str, int, bool, bool]],
    span_type: type[Span],
    fallback: Callable[[Span, Span | None, str, Mapping[str, Any]], None],
    /,
) -> None: ...

class PhaseEvents:
    def __init__(
        self, trace: RequestTrace | PyRequestTrace | list[Span], upstream: Span, /
    ) -> None: ...
    def __call__(self, event: str, info: Mapping[str, Any], /) -> None: ...

class SpanBase:
    name: str
    span_id: bytes
    parent_id: bytes
    attributes: dict[str, Any]
    encoded_attributes: bytes
    events: list[SpanEvent] | None
    status_message: str
    start_ns: int
    end_ns: int
    kind: int
    status_code: int
    def __init__(
        self,
        name: str,
        parent_id: bytes,
        start_ns: int | None = None,
        kind: int = 1,
        attributes: dict[str, Any] | None = None,
    ) -> None: ...
    def end(self, end_ns: int | None = None, /) -> None: ...
    def set_error(self, error_type: str, message: str = "") -> None: ...
    def record_exception(self, exc: BaseException, time_ns: int | None = None) -> None: ...

class RequestTrace:
    head: list[NodeSession]
    tail: list[NodeSession]
    trace_id: bytes
    root: Span
    spans: list[Span]
    logs: list[tuple[int, str, str, str]]
    capture_headers: bool
    capture_body: bool
    body_max_bytes: int
    def __init__(
        self,
        *,
        head: list[NodeSession],
        tail: list[NodeSession],
        start_ns: int,
        parent: tuple[bytes, bytes] | None = None,
    ) -> None: ...
    def span(
        self,
        name: str,
        parent: Span,
        start_ns: int | None = None,
        kind: int = 1,
        attributes: dict[str, Any] | None = None,
    ) -> Span: ...
    def sessions(self) -> list[NodeSession]: ...
