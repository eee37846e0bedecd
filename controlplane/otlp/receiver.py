"""The OTLP trace receiver: keeps spans of traced requests, drops the rest cheaply.

Upstream services that propagate ``traceparent`` export their spans here (gRPC on :4317 or
HTTP ``POST /v1/traces``); spans whose trace ID belongs to a traced request are stored with the
gateway's spans, so the trace shows both.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.engine import Database
from controlplane.db.models import TraceRow
from controlplane.metrics import ControlPlaneMetrics
from controlplane.otlp.convert import SpanRows, message_span_rows, only_traces
from controlplane.services.ingest import add_span_counts, store_spans

__all__ = ["Overloaded", "ReceiverResult", "TraceReceiver"]

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """Too many exports in flight: the client should retry later."""


@dataclass(frozen=True, slots=True)
class ReceiverResult:
    """What became of an export: spans stored and spans rejected (not part of a traced request)."""

    received: int
    stored: int
    rejected: int

    def response(self) -> trace_service_pb2.ExportTraceServiceResponse:
        """The OTLP response, with partial success when spans were rejected."""
        response = trace_service_pb2.ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = (
                f"{self.rejected} spans do not belong to a request traced by activetrace"
            )
        return response


class TraceReceiver:
    """Shared by the gRPC and HTTP endpoints; bounds the work in flight."""

    def __init__(
        self,
        db: Database,
        *,
        metrics: ControlPlaneMetrics,
        max_in_flight: int = 16,
        late_join_secs: float = 10.0,
        max_waiting_spans: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.received = 0
        self.stored = 0
        self.rejected = 0
        # A service's spans can arrive before the node's spans of the same request (each side
        # batches on its own clock): spans of not-yet-known traces wait here a little while.
        self.late_join_secs = late_join_secs
        self.max_waiting_spans = max_waiting_spans
        self._clock = clock
        self._waiting: deque[tuple[float, SpanRows, Sequence[trace_pb2.ResourceSpans]]] = deque()
        # Called with the spans that were stored (the forwarder's submit), when forwarding.
        self.forward: Callable[[Sequence[trace_pb2.ResourceSpans]], None] | None = None
        self.waiting_spans = 0

    async def export(self, request: trace_service_pb2.ExportTraceServiceRequest) -> ReceiverResult:
        """Store the spans of traced requests; raises :class:`Overloaded` when saturated."""
        if self.in_flight >= self.max_in_flight:
            raise Overloaded
        self.in_flight += 1
        try:
            with self.metrics.ingest_seconds.labels("otlp").time():
                result = await self._store(request)
        except Exception:
            self.metrics.db_errors.labels("otlp_ingest").inc()
            raise
        finally:
            self.in_flight -= 1
        self.metrics.spans_ingested.labels("otlp").inc(result.stored)
        self.metrics.spans_deduplicated.labels("otlp").inc(
            result.received - result.rejected - result.stored
        )
        self.metrics.spans_dropped.labels("otlp").inc(result.rejected)
        self.received += result.received
        self.stored += result.stored
        self.rejected += result.rejected
        return result

    async def _store(self, request: trace_service_pb2.ExportTraceServiceRequest) -> ReceiverResult:
        converted = message_span_rows(request.resource_spans)
        received = len(converted.rows)
        if not received:
            return ReceiverResult(0, 0, 0)
        async with self.db.session() as db:
            known = await _known_traces(db, converted.per_trace)
            kept = converted.only(known)
            stored = 0
            if kept.rows:
                stored = await _store(db, kept)
                await db.commit()
        if stored and self.forward is not None:
            self.forward(only_traces(request.resource_spans, set(kept.per_trace)))
        if len(kept.rows) < received:
            self._wait(
                converted.only(set(converted.per_trace) - known),
                request.resource_spans if self.forward is not None else (),
            )
        return ReceiverResult(received, stored, received - len(kept.rows))

    def _wait(self, rows: SpanRows, original: Sequence[trace_pb2.ResourceSpans]) -> None:
        self._waiting.append((self._clock() + self.late_join_secs, rows, original))
        self.waiting_spans += len(rows.rows)
        while self.waiting_spans > self.max_waiting_spans:
            _, dropped, _ = self._waiting.popleft()
            self.waiting_spans -= len(dropped.rows)

    async def join_late(self) -> int:
        """Store waiting spans whose trace arrived since; forget expired ones. Returns stored."""
        if not self._waiting:
            return 0
        now = self._clock()
        batches = list(self._waiting)
        self._waiting.clear()
        self.waiting_spans = 0
        trace_ids = {t for _, rows, _ in batches for t in rows.per_trace}
        async with self.db.session() as db:
            known = await _known_traces(db, trace_ids)
            stored = 0
            joined: list[trace_pb2.ResourceSpans] = []
            for deadline, rows, original in batches:
                kept = rows.only(known)
                if kept.rows:
                    stored += await _store(db, kept)
                    joined += only_traces(original, set(kept.per_trace))
                rest = rows.only(set(rows.per_trace) - known)
                if rest.rows and deadline > now:
                    self._waiting.append((deadline, rest, original))
                    self.waiting_spans += len(rest.rows)
            await db.commit()
        if joined and self.forward is not None:
            self.forward(joined)
        self.stored += stored
        self.metrics.spans_ingested.labels("otlp").inc(stored)
        return stored


async def _known_traces(db: AsyncSession, trace_ids: Iterable[str]) -> set[str]:
    """Which of ``trace_ids`` belong to a traced request."""
    query = select(TraceRow.trace_id).where(TraceRow.trace_id.in_(list(trace_ids))).distinct()
    return set(await db.scalars(query))


async def _store(db: AsyncSession, rows: SpanRows) -> int:
    """Store span rows of known traces; returns how many were new."""
    added = await store_spans(db, rows.rows)
    await add_span_counts(db, added)
    return added.total()
