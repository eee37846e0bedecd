"""The gRPC ``ClusterService``: one bidirectional stream per data plane node."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import DecodeError

from controlplane.cluster.messages import EncodedSpanBatch, NodeInput
from controlplane.cluster.registry import NodeConnection
from controlplane.services import config as config_service
from controlplane.services import ingest, nodes, sessions
from controlplane.state import ControlPlane
from protos.activetrace.cluster.v1 import cluster_pb2 as pb
from protos.activetrace.cluster.v1 import cluster_pb2_grpc as pb_grpc

__all__ = ["HELLO_TIMEOUT_SECS", "NODE_ID_PATTERN", "ClusterServicer"]

log = logging.getLogger(__name__)

HELLO_TIMEOUT_SECS = 10.0
NODE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ClusterServicer(pb_grpc.ClusterServiceServicer):
    """Authenticates nodes, registers them, pushes config and sessions, ingests their spans."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def _authorized(self, context: grpc.aio.ServicerContext[NodeInput, pb.CpMessage]) -> bool:
        token = self.cp.settings.cluster_token
        if token is None:
            return True
        metadata = dict(context.invocation_metadata() or ())
        given = str(metadata.get("authorization", ""))
        expected = f"Bearer {token.get_secret_value()}"
        return hmac.compare_digest(given.encode(), expected.encode())

    async def Connect(
        self,
        request_iterator: AsyncIterator[NodeInput],
        context: grpc.aio.ServicerContext[NodeInput, pb.CpMessage],
    ) -> AsyncIterator[pb.CpMessage]:
        """Serve one node's stream until either side ends it."""
        peer = context.peer()
        if not self._authorized(context):
            log.warning("refused node at %s: missing or wrong cluster token", peer)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token")
        hello = await self._hello(request_iterator, context, peer)
        connection = self.cp.registry.attach(hello.node_id)
        log.info("node %s connected from %s (version %s)", hello.node_id, peer, hello.version)
        reader = asyncio.create_task(self._read(hello.node_id, request_iterator, connection))
        try:
            async with self.cp.db.session() as db:
                await nodes.register_node(db, hello, now=self.cp.clock.now())
                current = await config_service.current_config(db)
                yield config_service.config_message(current.version, current.hash, current.config)
                for message in await sessions.active_session_messages(
                    db, hello.node_id, list(hello.session_ids)
                ):
                    yield message
            while True:
                outgoing = await connection.outbox.get()
                if outgoing is None:
                    break
                yield outgoing
        finally:
            reader.cancel()
            if self.cp.registry.detach(connection):
                log.info("node %s disconnected", hello.node_id)
                await self._mark_disconnected(hello.node_id)

    async def _hello(
        self,
        request_iterator: AsyncIterator[NodeInput],
        context: grpc.aio.ServicerContext[NodeInput, pb.CpMessage],
        peer: str,
    ) -> pb.Hello:
        try:
            first = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT_SECS)
        except (TimeoutError, StopAsyncIteration):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected Hello first")
        if not isinstance(first, pb.NodeMessage) or first.WhichOneof("message") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected Hello first")
        if not NODE_ID_PATTERN.match(first.hello.node_id):
            log.warning("refused node at %s: invalid node id %r", peer, first.hello.node_id[:64])
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "node_id must be 1-128 characters of letters, digits, '.', '_', '-'",
            )
        return first.hello

    async def _read(
        self,
        node_id: str,
        request_iterator: AsyncIterator[NodeInput],
        connection: NodeConnection,
    ) -> None:
        try:
            async for message in request_iterator:
                await self._handle(node_id, message, connection)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failed write to the database: drop the stream so the node resends unacked
            # batches after it reconnects.
            log.exception("error handling a message from node %s; closing its stream", node_id)
            self.cp.metrics.db_errors.labels("cluster").inc()
        connection.close()

    async def _handle(self, node_id: str, message: NodeInput, connection: NodeConnection) -> None:
        if isinstance(message, EncodedSpanBatch):
            await self._ingest(node_id, message, connection)
            return
        kind = message.WhichOneof("message")
        if kind == "span_batch":  # parsed by protobuf: the C extension is not built
            await self._ingest(node_id, message.span_batch, connection)
            return
        now = self.cp.clock.now()
        async with self.cp.db.session() as db:
            if kind == "heartbeat":
                await nodes.record_heartbeat(db, node_id, message.heartbeat, now=now)
            elif kind == "session_progress":
                await sessions.record_progress(db, node_id, message.session_progress, now=now)
            else:
                log.warning("node %s sent an unexpected %s message", node_id, kind)

    async def _ingest(
        self, node_id: str, batch: pb.SpanBatch | EncodedSpanBatch, connection: NodeConnection
    ) -> None:
        metrics = self.cp.metrics
        try:
            converted = ingest.batch_rows(batch)
        except ValueError as exc:
            # Acknowledged all the same: resending the same bytes would fail the same way.
            log.warning("unreadable span batch %s from node %s: %s", batch.batch_id, node_id, exc)
            metrics.malformed_batches.inc()
        else:
            async with self.cp.db.session() as db:
                with metrics.ingest_seconds.labels("cluster").time():
                    result = await ingest.ingest_rows(db, batch.session_ids, converted)
            metrics.spans_ingested.labels("cluster").inc(result.stored)
            if self.cp.forwarder is not None and result.stored:
                self._forward(node_id, batch, result.stored)
            if result.sessions == 0:
                metrics.spans_dropped.labels("cluster").inc(result.received)
            else:
                metrics.spans_deduplicated.labels("cluster").inc(result.duplicates)
        connection.send(pb.CpMessage(batch_ack=pb.BatchAck(batch_id=batch.batch_id)))

    def _forward(self, node_id: str, batch: pb.SpanBatch | EncodedSpanBatch, stored: int) -> None:
        assert self.cp.forwarder is not None
        if not isinstance(batch, EncodedSpanBatch):
            self.cp.forwarder.submit(batch.resource_spans)
            return
        try:
            resource_spans = batch.decoded()
        except DecodeError as exc:
            # Stored (the rows read only what they need), but protobuf refuses the batch
            # (invalid UTF-8 in a field the rows skip, say): there is nothing to forward.
            log.warning("span batch %s from %s not forwarded: %s", batch.batch_id, node_id, exc)
            self.cp.metrics.forward_dropped.labels("unreadable").inc(stored)
            return
        self.cp.forwarder.submit(resource_spans)

    async def _mark_disconnected(self, node_id: str) -> None:
        try:
            async with self.cp.db.session() as db:
                await nodes.mark_disconnected(db, node_id, now=self.cp.clock.now())
        except Exception:
            log.exception("could not mark node %s disconnected", node_id)
