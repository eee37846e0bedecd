"""Span export from the node: a bounded queue, batches by size or time, kept until acked.

Like the OpenTelemetry SDK's batch processor, it never hurts the request path: when the buffer
is full the oldest spans are dropped and counted (reported in heartbeats and ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from opentelemetry.proto.resource.v1 import resource_pb2

from dataplane.tracing import wire
from dataplane.tracing.otlp import SCOPE_NAME
from dataplane.tracing.spans import Span
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = ["SpanExport"]

log = logging.getLogger(__name__)

Sender = Callable[[pb.NodeMessage | bytes], bool]
"""Queues a cluster message on the stream; span batches come serialized (bytes)."""


class _Batch:
    """Finished traces of one set of sessions gathering into one span batch: each trace's
    spans encoded when it is submitted, by the request that finished (its response is already
    out), rather than all at once at flush (a batch of 2,048 spans took ~9 ms to encode, a pause
    every request waiting on the loop then paid; holding span objects until then also slowed
    every traced request down). Flushing joins them without a Python step per trace."""

    __slots__ = ("session_ids", "spans", "traces")

    def __init__(self, session_ids: tuple[str, ...]) -> None:
        self.session_ids = session_ids
        self.spans = 0
        self.traces: list[bytes] = []


class SpanExport:
    """Finished traces waiting to be sent, and sent batches waiting for their ack.

    Slotted: ``_wire.finish_head`` (the end of nearly every trace, tracer.py) reads and updates
    ``pending``, the span counts, the bounds and ``kept_traces`` at their slots.
    """

    __slots__ = (
        "_resource",
        "_wakeup",
        "acked_spans",
        "batch_spans",
        "dropped",
        "flush_interval",
        "full",
        "kept_traces",
        "max_spans",
        "pending",
        "pending_spans",
        "sender",
        "unacked",
        "unacked_spans",
        "version",
    )

    def __init__(
        self,
        *,
        node_resource: resource_pb2.Resource,
        version: str,
        max_spans: int = 50_000,
        batch_spans: int = 2048,
        flush_interval: float = 0.2,
    ) -> None:
        self.version = version
        self.max_spans = max_spans
        self.batch_spans = batch_spans
        self.flush_interval = flush_interval
        # the batch each set of sessions is filling (oldest first), and the filled ones not sent
        # yet (oldest first; sent, and dropped when the buffer is full, before those filling)
        self.pending: dict[tuple[str, ...], _Batch] = {}
        self.full: deque[_Batch] = deque()
        self.pending_spans = 0
        self.unacked: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self.unacked_spans = 0
        self.dropped = 0
        self.acked_spans = 0
        self.kept_traces = 0
        """Traces the node kept (Tracer.finish counts them, or ``_wire.finish_head`` for it)."""
        self.sender: Sender | None = None
        self._resource = node_resource.SerializeToString()  # written into every batch
        self._wakeup = asyncio.Event()

    @property
    def queued(self) -> int:
        """Spans not yet acknowledged by the control plane."""
        return self.pending_spans + self.unacked_spans

    def submit(self, session_ids: tuple[str, ...], trace_id: bytes, spans: Sequence[Span]) -> None:
        """Queue a finished trace (or late spans of one) for the sessions that kept it."""
        count = len(spans)
        batch = self.pending.get(session_ids)
        if batch is None or (batch.spans and batch.spans + count > self.batch_spans):
            batch = self._start(session_ids)  # a batch never splits a trace
        batch.traces.append(wire.trace_spans(trace_id, spans))
        batch.spans += count
        self.pending_spans += count
        if self.pending_spans + self.unacked_spans > self.max_spans:
            self._enforce_bound()
        elif batch.spans >= self.batch_spans:  # full: run() sends it now
            self._wakeup.set()

    def _start(self, session_ids: tuple[str, ...]) -> _Batch:
        """A new batch for ``session_ids``; the one it was filling (if any) is full."""
        filled = self.pending.pop(session_ids, None)
        if filled is not None:
            self.full.append(filled)
        batch = self.pending[session_ids] = _Batch(session_ids)
        return batch

    def _enforce_bound(self) -> None:
        """Drop the oldest spans until the buffer holds at most ``max_spans``: sent batches
        not acknowledged first, then whole batches not sent yet."""
        while self.queued > self.max_spans:
            if self.unacked:
                _, (_, count) = self.unacked.popitem(last=False)
                self.unacked_spans -= count
            else:
                count = self._take_oldest().spans
                self.pending_spans -= count
            self.dropped += count

    def _take_oldest(self) -> _Batch:
        """The oldest batch not sent yet (the full ones come first), off the queue."""
        return self.full.popleft() if self.full else self.pending.pop(next(iter(self.pending)))

    def flush(self) -> None:
        """Send the full batches, then every batch being filled (one per set of sessions)."""
        while self.full or self.pending:  # one at a time: a failure leaves the rest queued
            self._send_oldest()

    def _send_oldest(self) -> None:
        batch = self._take_oldest()
        count = batch.spans
        self.pending_spans -= count
        batch_id = uuid.uuid4().hex
        message = wire.node_span_batch(
            batch_id, batch.session_ids, self._resource, SCOPE_NAME, self.version, batch.traces
        )
        self.unacked[batch_id] = (message, count)
        self.unacked_spans += count
        self._send(message)

    def _send(self, message: bytes) -> None:
        if self.sender is not None:
            self.sender(message)

    def ack(self, batch_id: str) -> None:
        """The control plane stored a batch."""
        entry = self.unacked.pop(batch_id, None)
        if entry is not None:
            self.unacked_spans -= entry[1]
            self.acked_spans += entry[1]

    def resend_unacked(self) -> None:
        """After a reconnect: send every batch that was not acknowledged, oldest first."""
        for batch, _ in list(self.unacked.values()):
            self._send(batch)

    async def run(self) -> None:
        """Flush by size (woken by ``submit``) or every ``flush_interval``: the batches queued
        then, one per turn of the event loop, so that requests run between them. Each batch is
        copied twice on the way out (joined into its message, then into gRPC's buffer: ~0.4 MB
        each); several sessions' batches fill together, and sent at once they held every
        request up for their sum (8 sessions tracing every request: ~1-2 ms at a time)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.flush_interval)
            self._wakeup.clear()
            try:
                # those queued now: the ones filling meanwhile wait for the next flush (else a
                # steady stream of traces would keep this sending small batches)
                for _ in range(len(self.full) + len(self.pending)):
                    if not (self.full or self.pending):
                        break
                    self._send_oldest()
                    await asyncio.sleep(0)
            except Exception:  # an encoding bug must not stop export of later traces
                log.exception("span export flush failed")
