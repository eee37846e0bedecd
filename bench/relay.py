"""A span-acknowledging relay between data plane nodes and their control plane (benchmarks).

``python -m bench.relay --listen PORT --control-plane HOST:PORT`` accepts nodes' cluster
streams and opens one to the control plane for each: everything passes through both ways,
except span batches, which the relay acknowledges itself at once and drops. A node behind it
exports as it would to a control plane (or an OTLP collector) on its own host that keeps up,
while this machine's CPUs are spent on nothing but receiving the bytes: the control plane here
stores ~6,600 traces a second on a core it would share with wrk and the upstream, so the
benchmark otherwise has to pause it and let the node hold a whole run's spans.

Messages are relayed as bytes; a span batch is read only as far as the control plane's own
stream reader does (``read_node_message``: its envelope split in C, its spans left encoded).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import grpc.aio

from controlplane.cluster.messages import SERVICE, EncodedSpanBatch, read_node_message
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

METHOD = f"/{SERVICE}/Connect"


def batch_id(message: bytes) -> str | None:
    """The batch ID of a serialized NodeMessage carrying a span batch; None for others. Read
    as the control plane reads its stream (:func:`read_node_message`: the batch split in C,
    its spans left serialized)."""
    node_message = read_node_message(message)
    if isinstance(node_message, EncodedSpanBatch):
        return node_message.batch_id
    if node_message.WhichOneof("message") == "span_batch":  # the C splitter is not built
        return node_message.span_batch.batch_id
    return None


def ack(identifier: str) -> bytes:
    """A serialized CpMessage acknowledging the batch ``identifier``."""
    return pb.CpMessage(batch_ack=pb.BatchAck(batch_id=identifier)).SerializeToString()


class Relay:
    """Relays each node's stream to the control plane at ``target``."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = 0
        self.batches = 0
        """Span batches acknowledged (and dropped) so far."""

    async def connect(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

            async def upstream_requests() -> AsyncIterator[bytes]:
                while (message := await outgoing.get()) is not None:
                    yield message

            connect: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
                METHOD
            )
            call = connect(upstream_requests(), metadata=context.invocation_metadata())
            lock = asyncio.Lock()

            async def from_node() -> None:
                async for message in requests:
                    identifier = batch_id(message)
                    if identifier is None:
                        outgoing.put_nowait(message)
                        continue
                    self.batches += 1
                    async with lock:
                        await context.write(ack(identifier))
                outgoing.put_nowait(None)

            async def from_control_plane() -> None:
                async for message in call:
                    async with lock:
                        await context.write(message)

            tasks = [asyncio.create_task(from_node()), asyncio.create_task(from_control_plane())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                        await task
                call.cancel()


async def start_relay(port: int, target: str) -> tuple[grpc.aio.Server, Relay]:
    """A started relay on loopback ``port`` (0: any free one, see ``Relay.port``) for the
    control plane at ``target``."""
    relay = Relay(target)
    server = grpc.aio.server()
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.stream_stream_rpc_method_handler(
        relay.connect
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Connect": handler})]
    )
    relay.port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, relay


async def serve(port: int, target: str) -> None:
    server, _ = await start_relay(port, target)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="loopback port for nodes")
    parser.add_argument("--control-plane", required=True, help="the control plane's host:port")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.control_plane))


if __name__ == "__main__":
    main()
