"""Reading a node's stream messages: span batches stay serialized until they are stored.

A span batch is most of what a node sends. Parsing it into protobuf objects only for
:func:`~controlplane.otlp.convert.span_rows` to read every field back out cost more than the
rest of ingest; the C extension splits the envelope instead, and
:func:`~controlplane.otlp.convert.encoded_span_rows` reads the ResourceSpans bytes directly.
Every other message (and every message when the extension is not built) is parsed by protobuf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from protos.activetrace.cluster.v1 import cluster_pb2 as pb

node_span_batch: Callable[[bytes], tuple[str, list[str], list[bytes]] | None] | None
try:
    from controlplane.otlp._rows import node_span_batch
except ImportError:  # built without its C extension (ACTIVETRACE_PURE_PYTHON=1)
    node_span_batch = None

__all__ = ["SERVICE", "EncodedSpanBatch", "NodeInput", "add_cluster_service", "read_node_message"]

SERVICE = "activetrace.cluster.v1.ClusterService"


@dataclass(frozen=True, slots=True)
class EncodedSpanBatch:
    """A node's ``SpanBatch`` whose ``ResourceSpans`` are still serialized."""

    batch_id: str
    session_ids: list[str]
    resource_spans: list[bytes]

    def decoded(self) -> list[trace_pb2.ResourceSpans]:
        """The ResourceSpans as protobuf messages (for the OTLP forwarder)."""
        return [trace_pb2.ResourceSpans.FromString(data) for data in self.resource_spans]


NodeInput = pb.NodeMessage | EncodedSpanBatch


def read_node_message(data: bytes) -> NodeInput:
    """The stream's request deserializer: a span batch kept encoded, or a parsed message."""
    if node_span_batch is not None:
        split = node_span_batch(data)
        if split is not None:
            return EncodedSpanBatch(*split)
    return pb.NodeMessage.FromString(data)


def add_cluster_service(connect: Callable[..., Any], server: grpc.aio.Server) -> None:
    """Serve ``ClusterService/Connect`` with ``connect``, its requests read by
    :func:`read_node_message` (the generated registration would parse every span batch)."""
    handlers = {
        "Connect": grpc.stream_stream_rpc_method_handler(
            connect,
            request_deserializer=read_node_message,
            response_serializer=pb.CpMessage.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
