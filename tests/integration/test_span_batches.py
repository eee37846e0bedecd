"""Span batches over a real cluster stream: stored when readable, acknowledged either way."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from controlplane.otlp.codec import to_any_value
from controlplane.otlp.convert import GATEWAY_SERVICE_NAME
from protos.activetrace.cluster.v1 import cluster_pb2 as pb
from tests.conftest import sqlite_url
from tests.integration.conftest import Stack, launch_stack, running, wait_for
from tests.protowire import length_delimited

NODE = "dp-raw"
TRACE_ID = bytes(range(1, 17))


class RawStream:
    """A node's stream that sends serialized messages as given (bytes on the wire)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._outgoing: queue.Queue[bytes | None] = queue.Queue()
        connect = channel.stream_stream(
            "/activetrace.cluster.v1.ClusterService/Connect",
            request_serializer=lambda data: data,
            response_deserializer=pb.CpMessage.FromString,
        )
        self.replies: Iterator[pb.CpMessage] = connect(self._requests(), timeout=30)

    def _requests(self) -> Iterator[bytes]:
        while (data := self._outgoing.get()) is not None:
            yield data

    def send(self, data: bytes) -> None:
        self._outgoing.put(data)

    def next_ack(self) -> str:
        """The batch ID of the next BatchAck (other messages, config and sessions, skipped)."""
        for reply in self.replies:
            if reply.WhichOneof("message") == "batch_ack":
                return reply.batch_ack.batch_id
        raise AssertionError("the stream ended without an ack")

    def close(self) -> None:
        self._outgoing.put(None)


@contextmanager
def node_stream(stack: Stack) -> Iterator[tuple[RawStream, str]]:
    """A registered node's raw stream and a session targeting that node."""
    with grpc.insecure_channel(f"127.0.0.1:{stack.cluster_port}") as channel:
        stream = RawStream(channel)
        try:
            hello = pb.NodeMessage(hello=pb.Hello(node_id=NODE, hostname="h", version="t"))
            stream.send(hello.SerializeToString())
            wait_for(
                lambda: any(n["id"] == NODE for n in stack.ok("GET", "/api/v1/nodes")),
                "the node to register",
            )
            session = stack.ok(
                "POST", "/api/v1/tracing-sessions", json={"targets": [NODE], "max_samples": 5}
            )["id"]
            yield stream, session
        finally:
            stream.close()


def _attribute(key: str, value: str | int) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=to_any_value(value))


def _batch(batch_id: str, session_id: str, trace_state: str = "") -> pb.NodeMessage:
    root = trace_pb2.Span(
        trace_id=TRACE_ID,
        span_id=b"\x01" * 8,
        trace_state=trace_state,
        name="GET /orders",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_000_000,
        end_time_unix_nano=3_000_000,
        attributes=[
            _attribute("http.request.method", "GET"),
            _attribute("url.path", "/orders"),
            _attribute("http.response.status_code", 200),
            _attribute("user_agent.original", 'curl "quoted" \x00 é'),
        ],
    )
    router = trace_pb2.Span(
        trace_id=TRACE_ID,
        span_id=b"\x02" * 8,
        parent_span_id=root.span_id,
        name="gateway.router",
        kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1_100_000,
        end_time_unix_nano=1_200_000,
    )
    resource = resource_pb2.Resource(
        attributes=[
            _attribute("service.name", GATEWAY_SERVICE_NAME),
            _attribute("gateway.node.id", NODE),
        ]
    )
    spans = trace_pb2.ResourceSpans(
        resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=[root, router])]
    )
    return pb.NodeMessage(
        span_batch=pb.SpanBatch(batch_id=batch_id, session_ids=[session_id], resource_spans=[spans])
    )


def test_a_readable_batch_is_stored_and_an_unreadable_one_acknowledged(stack: Stack) -> None:
    with node_stream(stack) as (stream, session):
        good = _batch("good", session)
        # The envelope is sound, the ResourceSpans inside it are cut short.
        spans = good.span_batch.resource_spans[0].SerializeToString()
        cut = pb.SpanBatch(batch_id="good", session_ids=[session]).SerializeToString()
        cut += length_delimited(0x1A, spans[:-7])  # SpanBatch.resource_spans
        stream.send(length_delimited(0x1A, cut))  # NodeMessage.span_batch
        assert stream.next_ack() == "good"  # unreadable, acknowledged all the same
        stream.send(good.SerializeToString())
        assert stream.next_ack() == "good"  # the same stream is still served
    traces = stack.ok("GET", f"/api/v1/tracing-sessions/{session}/traces")["items"]
    assert [t["trace_id"] for t in traces] == [TRACE_ID.hex()]
    assert traces[0]["path"] == "/orders"
    detail = stack.ok("GET", f"/api/v1/traces/{TRACE_ID.hex()}")
    assert sorted(s["name"] for s in detail["spans"]) == ["GET /orders", "gateway.router"]
    root = next(s for s in detail["spans"] if s["name"] == "GET /orders")
    assert root["attributes"]["user_agent.original"] == 'curl "quoted" \ufffd é'
    metrics = stack.call("GET", "/metrics").text
    assert "activetrace_cp_malformed_span_batches_total 1.0" in metrics
    assert 'activetrace_cp_spans_ingested_total{source="cluster"} 2.0' in metrics
    assert "unreadable span batch good from node dp-raw" in stack.logs()


def test_a_stored_batch_protobuf_refuses_is_not_forwarded(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Rows read only the fields they need; forwarding parses the whole batch with protobuf,
    which refuses invalid UTF-8 anywhere (here in a span's trace_state): counted, not fatal."""
    stack = launch_stack(
        sqlite_url(tmp_path),
        tmp_path,
        cp_args=["--forward-otlp-endpoint", "http://127.0.0.1:9/v1/traces"],
    )
    with running(stack, request) as s:
        with node_stream(s) as (stream, session):
            data = _batch("odd", session, trace_state="X").SerializeToString()
            assert data.count(b"\x1a\x01X") == 1
            stream.send(data.replace(b"\x1a\x01X", b"\x1a\x01\xff"))  # Span.trace_state
            assert stream.next_ack() == "odd"
        traces = s.ok("GET", f"/api/v1/tracing-sessions/{session}/traces")["items"]
        assert [t["trace_id"] for t in traces] == [TRACE_ID.hex()]
        metrics = s.call("GET", "/metrics").text
        assert 'activetrace_cp_forward_spans_dropped_total{reason="unreadable"} 2.0' in metrics
        assert "activetrace_cp_malformed_span_batches_total 0.0" in metrics
        assert "span batch odd from dp-raw not forwarded" in s.logs()
