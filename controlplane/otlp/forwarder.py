"""Forwarding stored spans to an external OTLP endpoint (a collector, Jaeger, Tempo...).

Like the OpenTelemetry SDK's batch processor: stored spans go into a bounded queue (a full queue
drops and counts, never blocks ingest), a background task sends them in batches by size or
time, over OTLP/HTTP (protobuf) or OTLP/gRPC, and retries with exponential backoff on the
statuses the OTLP spec calls retryable (HTTP 429/502/503/504, gRPC UNAVAILABLE and friends),
honouring ``Retry-After``. A batch that still fails after the last try is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Iterable
from typing import Final

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from controlplane.metrics import ControlPlaneMetrics

__all__ = ["OtlpForwarder"]

log = logging.getLogger(__name__)

RETRYABLE_HTTP: Final = frozenset({429, 502, 503, 504})
RETRYABLE_GRPC: Final = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _count(resource_spans: Iterable[trace_pb2.ResourceSpans]) -> int:
    return sum(len(ss.spans) for rs in resource_spans for ss in rs.scope_spans)


class OtlpForwarder:
    """Sends every stored span on to ``endpoint``.

    ``endpoint`` is ``http(s)://host:port/v1/traces`` for OTLP/HTTP or ``grpc://host:port``
    (``grpcs://`` for TLS) for OTLP/gRPC.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        metrics: ControlPlaneMetrics,
        max_queued_spans: int = 100_000,
        batch_spans: int = 2048,
        flush_interval: float = 1.0,
        max_attempts: int = 6,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.metrics = metrics
        self.max_queued_spans = max_queued_spans
        self.batch_spans = batch_spans
        self.flush_interval = flush_interval
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.queue: deque[tuple[trace_pb2.ResourceSpans, int]] = deque()
        self.queued_spans = 0
        self.sent_spans = 0
        self.dropped_spans = 0
        self._wakeup = asyncio.Event()
        self._http: httpx.AsyncClient | None = None
        self._channel: grpc.aio.Channel | None = None
        scheme = endpoint.split("://", 1)[0]
        if scheme not in ("http", "https", "grpc", "grpcs"):
            raise ValueError(f"forward endpoint {endpoint!r}: use http(s)://... or grpc(s)://...")
        self.protocol = "grpc" if scheme.startswith("grpc") else "http"

    def submit(self, resource_spans: Iterable[trace_pb2.ResourceSpans]) -> None:
        """Queue spans that were just stored; drops (and counts) what does not fit."""
        for rs in resource_spans:
            count = _count([rs])
            if not count:
                continue
            if self.queued_spans + count > self.max_queued_spans:
                self._drop(count, "queue_full")
                continue
            self.queue.append((rs, count))
            self.queued_spans += count
            if self.queued_spans >= self.batch_spans:
                self._wakeup.set()

    def _drop(self, count: int, reason: str) -> None:
        self.dropped_spans += count
        self.metrics.forward_dropped.labels(reason).inc(count)

    def _take_batch(self) -> tuple[list[trace_pb2.ResourceSpans], int]:
        batch: list[trace_pb2.ResourceSpans] = []
        count = 0
        while self.queue and (not batch or count + self.queue[0][1] <= self.batch_spans):
            rs, n = self.queue.popleft()
            batch.append(rs)
            count += n
        self.queued_spans -= count
        return batch, count

    async def run(self) -> None:
        """Send batches by size or every ``flush_interval`` until cancelled."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.flush_interval)
                self._wakeup.clear()
                await self.flush()
        finally:
            await self.aclose()

    async def flush(self) -> None:
        """Send everything queued now."""
        while self.queue:
            batch, count = self._take_batch()
            if await self._send_with_retries(batch):
                self.sent_spans += count
                self.metrics.forward_sent.inc(count)
            else:
                self._drop(count, "export_failed")

    async def _send_with_retries(self, batch: list[trace_pb2.ResourceSpans]) -> bool:
        request = trace_service_pb2.ExportTraceServiceRequest(resource_spans=batch)
        backoff = self.initial_backoff
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._send(request)
                return True
            except _Retryable as exc:
                if attempt == self.max_attempts:
                    log.warning("forwarding to %s failed %d times: %s", self.endpoint, attempt, exc)
                    return False
                delay = exc.retry_after if exc.retry_after is not None else backoff
                await asyncio.sleep(min(self.max_backoff, delay) * random.uniform(0.8, 1.2))
                backoff = min(self.max_backoff, backoff * 2)
            except Exception as exc:  # not retryable: a bad request or a broken endpoint
                log.warning("forwarding to %s failed: %s", self.endpoint, exc)
                return False
        return False

    async def _send(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        if self.protocol == "http":
            await self._send_http(request)
        else:
            await self._send_grpc(request)

    async def _send_http(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout)
        try:
            response = await self._http.post(
                self.endpoint,
                content=request.SerializeToString(),
                headers={"content-type": "application/x-protobuf"},
            )
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code in RETRYABLE_HTTP:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        if response.status_code >= 300:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    async def _send_grpc(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        if self._channel is None:
            target = self.endpoint.split("://", 1)[1].rstrip("/")
            self._channel = (
                grpc.aio.secure_channel(target, grpc.ssl_channel_credentials())
                if self.endpoint.startswith("grpcs://")
                else grpc.aio.insecure_channel(target)
            )
        stub = trace_service_pb2_grpc.TraceServiceStub(self._channel)  # type: ignore[no-untyped-call]
        try:
            await stub.Export(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in RETRYABLE_GRPC:
                raise _Retryable(f"gRPC {exc.code().name}: {exc.details()}") from None
            raise RuntimeError(f"gRPC {exc.code().name}: {exc.details()}") from None

    async def aclose(self) -> None:
        """Close the connections."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
