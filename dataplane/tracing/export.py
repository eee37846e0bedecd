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


_Finished = tuple[tuple[str, ...], int, bytes]
"""A finished trace waiting for its batch: (session IDs, span count, its spans encoded).

Encoded when it is submitted, by the request that finished (its response is already out),
rather than all at once at flush: a batch of 2,048 spans took ~9 ms to encode, a pause every
request waiting on the loop then paid. Holding the span objects until then also slowed every
traced request down. A plain tuple: one is made per traced request.
"""


class SpanExport:
    """Finished traces waiting to be sent, and sent batches waiting for their ack."""

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
        self.pending: deque[_Finished] = deque()
        self.pending_spans = 0
        self.unacked: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self.unacked_spans = 0
        self.dropped = 0
        self.acked_spans = 0
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
        self.pending.append((session_ids, count, wire.trace_spans(trace_id, spans)))
        pending = self.pending_spans = self.pending_spans + count
        if pending + self.unacked_spans > self.max_spans:
            self._enforce_bound()
            pending = self.pending_spans
        if pending >= self.batch_spans > pending - count:  # a batch just filled: wake run()
            self._wakeup.set()

    def _enforce_bound(self) -> None:
        while self.queued > self.max_spans:
            if self.unacked:
                _, (_, count) = self.unacked.popitem(last=False)
                self.unacked_spans -= count
            else:
                count = self.pending.popleft()[1]
                self.pending_spans -= count
            self.dropped += count

    def flush(self) -> None:
        """Turn pending traces into batches (one per set of sessions) and send them."""
        while self.pending:
            session_ids = self.pending[0][0]
            group: list[bytes] = []
            count = 0
            while self.pending and self.pending[0][0] == session_ids:
                if group and count + self.pending[0][1] > self.batch_spans:
                    break
                _, spans, encoded = self.pending.popleft()
                group.append(encoded)
                count += spans
            self.pending_spans -= count
            batch_id = uuid.uuid4().hex
            message = wire.node_span_batch(
                batch_id, session_ids, self._resource, SCOPE_NAME, self.version, group
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
        """Flush by size (woken by ``submit``) or every ``flush_interval``."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.flush_interval)
            self._wakeup.clear()
            try:
                self.flush()
            except Exception:  # an encoding bug must not stop export of later traces
                log.exception("span export flush failed")
