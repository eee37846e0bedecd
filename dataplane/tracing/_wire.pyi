from collections.abc import Sequence

from dataplane.tracing.spans import Span

def trace_spans(trace_id: bytes, spans: Sequence[Span], /) -> bytes: ...
