"""Span export: batching by session set, acks, resend, bounded buffer with drop counts."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from opentelemetry.proto.resource.v1 import resource_pb2

from dataplane.tracing.export import SpanExport
from dataplane.tracing.otlp import encode_spans_messages
from dataplane.tracing.spans import Span
from protos.activetrace.cluster.v1 import cluster_pb2 as pb


def _export(
    resource: resource_pb2.Resource | None = None, **kwargs: int
) -> tuple[SpanExport, list[pb.SpanBatch]]:
    sent: list[pb.SpanBatch] = []
    node_resource = resource if resource is not None else resource_pb2.Resource()
    export = SpanExport(node_resource=node_resource, version="t", **kwargs)

    def sender(message: pb.NodeMessage | bytes) -> bool:
        # span batches go out serialized; parsing them checks the bytes are a NodeMessage
        assert isinstance(message, bytes)
        sent.append(pb.NodeMessage.FromString(message).span_batch)
        return True

    export.sender = sender
    return export, sent


def _spans(count: int) -> list[Span]:
    spans = []
    for index in range(count):
        span = Span(f"s{index}", b"", 1_000 + index)
        span.end(2_000 + index)
        spans.append(span)
    return spans


def _span_count(batch: pb.SpanBatch) -> int:
    return sum(len(ss.spans) for rs in batch.resource_spans for ss in rs.scope_spans)


def test_batches_group_traces_by_session_set() -> None:
    export, sent = _export()
    export.submit(("a",), b"\x01" * 16, _spans(3))
    export.submit(("a",), b"\x02" * 16, _spans(2))
    export.submit(("a", "b"), b"\x03" * 16, _spans(1))
    export.flush()
    assert [(list(b.session_ids), _span_count(b)) for b in sent] == [(["a"], 5), (["a", "b"], 1)]
    assert export.queued == 6


def test_batches_are_split_by_size_but_never_split_a_trace() -> None:
    export, sent = _export(batch_spans=4)
    for index in range(3):
        export.submit(("a",), bytes([index + 1]) * 16, _spans(3))
    export.flush()
    assert [_span_count(b) for b in sent] == [3, 3, 3]


def test_ack_releases_and_reconnect_resends_the_rest() -> None:
    export, sent = _export()
    export.submit(("a",), b"\x01" * 16, _spans(2))
    export.flush()
    export.submit(("b",), b"\x02" * 16, _spans(3))
    export.flush()
    export.ack(sent[0].batch_id)
    assert export.queued == 3
    assert export.acked_spans == 2
    sent.clear()
    export.resend_unacked()
    assert [list(b.session_ids) for b in sent] == [["b"]]


def test_disconnected_export_keeps_batches() -> None:
    export, _ = _export()
    export.sender = None
    export.submit(("a",), b"\x01" * 16, _spans(2))
    export.flush()
    assert export.queued == 2


def test_full_buffer_drops_the_oldest_and_counts() -> None:
    export, _ = _export(max_spans=5)
    export.sender = None
    export.submit(("a",), b"\x01" * 16, _spans(3))
    export.flush()
    export.submit(("a",), b"\x02" * 16, _spans(3))
    assert export.dropped == 3
    assert export.queued == 3


def test_encoded_spans_carry_ids_times_and_status() -> None:
    export, sent = _export()
    span = Span(
        "gateway.upstream",
        b"\x09" * 8,
        10,
        kind=3,
        attributes={"a": 1, "b": "x", "c": True, "d": ["p", "q"], "e": 1.5},
    )
    span.set_error("timeout", "read timed out")
    span.record_exception(TimeoutError("slow"), time_ns=15)
    span.end(20)
    export.submit(("a",), b"\x07" * 16, [span])
    export.flush()
    encoded = sent[0].resource_spans[0].scope_spans[0].spans[0]
    assert encoded.trace_id == b"\x07" * 16
    assert encoded.parent_span_id == b"\x09" * 8
    assert (encoded.start_time_unix_nano, encoded.end_time_unix_nano) == (10, 20)
    assert encoded.kind == 3
    assert encoded.status.code == 2
    values = {kv.key: kv.value for kv in encoded.attributes}
    assert values["a"].int_value == 1
    assert values["b"].string_value == "x"
    assert values["c"].bool_value is True
    assert [v.string_value for v in values["d"].array_value.values] == ["p", "q"]
    assert values["e"].double_value == 1.5
    assert values["error.type"].string_value == "timeout"
    assert encoded.events[0].name == "exception"


def test_batches_are_the_same_message_the_protobuf_classes_build() -> None:
    export, sent = _export()
    spans = _spans(2)
    spans[0].attributes["http.route"] = "/orders"
    export.submit(("a", "b"), b"\x01" * 16, spans)
    export.flush()
    (batch,) = sent
    expected = pb.SpanBatch(batch_id=batch.batch_id, session_ids=["a", "b"])
    expected.resource_spans.append(
        encode_spans_messages(resource_pb2.Resource(), [(b"\x01" * 16, spans)], "t")
    )
    assert batch == expected


def test_a_large_batch_is_the_same_message_the_protobuf_classes_build() -> None:
    # ~60 KB of spans: every nesting level's length takes a multi-byte varint
    resource = resource_pb2.Resource()
    resource.attributes.add(key="service.instance.id").value.string_value = "dp-1" * 50
    export, sent = _export(resource, batch_spans=10_000)
    traces = []
    for index in range(200):
        trace_id = index.to_bytes(16, "big")
        spans = _spans(3)
        spans[0].attributes["url.full"] = "http://example.com/" + "x" * 60
        export.submit(("session-a",), trace_id, spans)
        traces.append((trace_id, spans))
    export.flush()
    (batch,) = sent
    assert _span_count(batch) == 600
    expected = pb.SpanBatch(batch_id=batch.batch_id, session_ids=["session-a"])
    expected.resource_spans.append(encode_spans_messages(resource, traces, "t"))
    assert batch == expected


def test_a_full_buffer_drops_the_oldest_batch_not_yet_sent() -> None:
    export, sent = _export(max_spans=5)
    export.submit(("a",), b"\x01" * 16, _spans(3))
    export.submit(("b",), b"\x02" * 16, _spans(3))
    assert (export.dropped, export.queued) == (3, 3)
    export.flush()
    assert [(list(b.session_ids), _span_count(b)) for b in sent] == [(["b"], 3)]


def test_a_filled_batch_wakes_the_sender_and_keeps_its_place() -> None:
    export, sent = _export(batch_spans=4)
    export.submit(("a",), b"\x01" * 16, _spans(2))
    export.submit(("b",), b"\x02" * 16, _spans(1))
    assert not export._wakeup.is_set()
    export.submit(("a",), b"\x03" * 16, _spans(2))  # "a" holds 4 spans: full
    assert export._wakeup.is_set()
    export.submit(("a",), b"\x04" * 16, _spans(1))  # starts the next batch of "a"
    export.flush()
    assert [(list(b.session_ids), _span_count(b)) for b in sent] == [
        (["a"], 4),
        (["b"], 1),
        (["a"], 1),
    ]
    assert export.queued == 6


def test_a_batch_that_cannot_be_built_leaves_the_others_queued() -> None:
    export, sent = _export()
    export.submit(("\ud800",), b"\x01" * 16, _spans(1))  # a lone surrogate: no UTF-8 for it
    export.submit(("b",), b"\x02" * 16, _spans(2))
    with pytest.raises(UnicodeEncodeError):
        export.flush()
    export.flush()  # what run() does next time
    assert [list(b.session_ids) for b in sent] == [["b"]]
    assert export.queued == 2


async def test_run_sends_one_batch_per_turn_of_the_event_loop() -> None:
    """Batches queued together go out one at a time, with requests run between them; those
    filling meanwhile wait for the next flush (no stream of small batches)."""
    export, sent = _export(flush_interval=3600)
    for name in "abc":
        export.submit((name,), name.encode() * 16, _spans(2))
    seen: list[int] = []  # how many batches were out at each turn of this other task
    runner = asyncio.create_task(export.run())
    try:
        await asyncio.sleep(0)  # (run() waits for its wake-up)
        export._wakeup.set()
        while len(seen) < 8:
            seen.append(len(sent))
            if len(sent) == 1 and ("d",) not in export.pending:
                export.submit(("d",), b"d" * 16, _spans(1))  # during the flush: the next one's
            await asyncio.sleep(0)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert {1, 2} <= set(seen)  # this task ran between the sends
    assert [list(b.session_ids) for b in sent] == [["a"], ["b"], ["c"]]
    assert list(export.pending) == [("d",)]
