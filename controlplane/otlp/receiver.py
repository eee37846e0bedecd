"""The OTLP trace receiver: keeps spans of traced requests, drops the rest cheaply.

Upstream services that propagate ``traceparent`` export their spans here (gRPC on :4317 or
HTTP ``POST /v1/traces``); spans whose trace ID belongs to a traced request are stored with the
gateway's spans, so the trace shows both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from sqlalchemy import select

from controlplane.db.engine import Database
from controlplane.db.models import TraceRow
from controlplane.metrics import ControlPlaneMetrics
from controlplane.otlp.convert import span_rows
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
        self, db: Database, *, metrics: ControlPlaneMetrics, max_in_flight: int = 16
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.received = 0
        self.stored = 0
        self.rejected = 0

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
        converted = span_rows(request.resource_spans)
        received = len(converted.rows)
        if not received:
            return ReceiverResult(0, 0, 0)
        async with self.db.session() as db:
            known = set(
                await db.scalars(
                    select(TraceRow.trace_id)
                    .where(TraceRow.trace_id.in_(list(converted.per_trace)))
                    .distinct()
                )
            )
            kept = converted.only(known)
            stored = 0
            if kept.rows:
                added = await store_spans(db, kept.rows)
                await add_span_counts(db, added)
                await db.commit()
                stored = added.total()
        return ReceiverResult(received, stored, received - len(kept.rows))
