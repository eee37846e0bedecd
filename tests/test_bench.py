"""The benchmarks' own helpers: the span-acknowledging relay, callgrind's summaries, the
per-thread CPU split and the finder of unspecialized bytecode.

Benchmarks are run by hand (docs/benchmarks.md), so what they rely on is checked here: a relay
that misread a batch would leave the node waiting for acks, and a misparsed dump would print
wrong figures without failing.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import threading
import time
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from bench.gateway import WrkResult, other_threads_seconds, page_faults
from bench.instructions import _summary, cycle_estimate
from bench.relay import METHOD, ack, batch_id, start_relay
from bench.specialization import (
    bytecodes_run,
    code_objects,
    executed_offsets,
    generic_sites,
    unspecialized,
)
from bench.tracing import Run, _cpu, _paired, _threads
from controlplane.cluster.messages import SERVICE
from protos.activetrace.cluster.v1 import cluster_pb2 as pb


def test_batch_id_is_read_from_a_serialized_span_batch() -> None:
    message = pb.NodeMessage(
        span_batch=pb.SpanBatch(batch_id="b" * 200, session_ids=["s1", "s2"])
    ).SerializeToString()
    assert batch_id(message) == "b" * 200  # a two-byte length
    heartbeat = pb.NodeMessage(heartbeat=pb.Heartbeat(requests=5)).SerializeToString()
    assert batch_id(heartbeat) is None
    assert batch_id(b"") is None


def test_ack_is_a_cp_message_acknowledging_the_batch() -> None:
    for identifier in ("0123abcd", "x" * 300):
        message = pb.CpMessage.FromString(ack(identifier))
        assert message.WhichOneof("message") == "batch_ack"
        assert message.batch_ack.batch_id == identifier


async def test_relay_acknowledges_batches_and_passes_the_rest_both_ways() -> None:
    """A real gRPC control plane stand-in behind the relay: it sees the hello and heartbeat but
    no span batch; the node gets the control plane's config and the relay's ack."""
    received: list[pb.NodeMessage] = []

    async def control_plane(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> None:
        async for raw in requests:
            message = pb.NodeMessage.FromString(raw)
            received.append(message)
            if message.WhichOneof("message") == "hello":
                config = pb.CpMessage(config=pb.ConfigSnapshot(version=7, hash="h"))
                await context.write(config.SerializeToString())

    upstream = grpc.aio.server()
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.stream_stream_rpc_method_handler(
        control_plane
    )
    upstream.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Connect": handler})]
    )
    port = upstream.add_insecure_port("127.0.0.1:0")
    await upstream.start()
    relay_server, relay = await start_relay(0, f"127.0.0.1:{port}")
    outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def node_messages() -> AsyncIterator[bytes]:
        while (message := await outgoing.get()) is not None:
            yield message

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{relay.port}") as channel:
            connect: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
                METHOD
            )
            call = connect(node_messages())
            outgoing.put_nowait(pb.NodeMessage(hello=pb.Hello(node_id="n1")).SerializeToString())
            first = pb.CpMessage.FromString(await _read(call))
            assert first.config.version == 7
            batch = pb.NodeMessage(span_batch=pb.SpanBatch(batch_id="batch-1"))
            outgoing.put_nowait(batch.SerializeToString())
            second = pb.CpMessage.FromString(await _read(call))
            assert second.batch_ack.batch_id == "batch-1"
            heartbeat = pb.NodeMessage(heartbeat=pb.Heartbeat(requests=3))
            outgoing.put_nowait(heartbeat.SerializeToString())
            outgoing.put_nowait(None)
            with pytest.raises(EOFError):
                await _read(call)
    finally:
        await relay_server.stop(None)
        await upstream.stop(None)
    assert [m.WhichOneof("message") for m in received] == ["hello", "heartbeat"]
    assert relay.batches == 1


async def _read(call: grpc.aio.StreamStreamCall[bytes, bytes]) -> bytes:
    """The next message on ``call``; EOFError once the stream has ended."""
    message: object = await asyncio.wait_for(call.read(), 10)
    if message is grpc.aio.EOF:
        raise EOFError
    assert isinstance(message, bytes)
    return message


DUMP = """\
version: 1
creator: callgrind-3.19.0
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
fn=(1) main
summary: 1000 300 200 10 20 5 1 2 3 100 7 50 3
"""


def test_callgrind_summary_and_cycle_estimate() -> None:
    events = _summary(DUMP)
    assert events["Ir"] == 1000
    assert events["Bim"] == 3
    # 1000 instructions + 10 x (10 + 20 + 5) first-level + 100 x (1 + 2 + 3) last-level
    # + 10 x (7 + 3) mispredicted branches
    assert cycle_estimate({k: float(v) for k, v in events.items()}) == 1000 + 350 + 600 + 100
    assert _summary("summary: 5\n") == {}

    assert _summary("events: Ir\nsummary: 42\n") == {"Ir": 42}  # without simulation


def _spin(seconds: float) -> None:
    """Burn ``seconds`` of this thread's CPU."""
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


def test_other_threads_seconds_counts_workers_and_not_the_main_thread() -> None:
    pid = os.getpid()
    before = other_threads_seconds(pid)
    _spin(0.3)  # the main thread's CPU is not counted
    assert other_threads_seconds(pid) - before < 0.15
    before = other_threads_seconds(pid)
    worker = threading.Thread(target=_spin, args=(0.2,))
    worker.start()
    counted = 0.0
    while worker.is_alive():  # read while it lives: an exited thread takes its time along
        counted = max(counted, other_threads_seconds(pid) - before)
        time.sleep(0.01)
    worker.join()
    assert counted >= 0.1


def test_page_faults_count_the_new_pages_a_process_touches() -> None:
    pid = os.getpid()
    before = page_faults(pid)
    memory = mmap.mmap(-1, 16 << 20)  # anonymous: each page faults when first touched
    memory.madvise(mmap.MADV_NOHUGEPAGE)  # (one fault per 4 KiB page, whatever THP's setting)
    try:
        for offset in range(0, len(memory), 4096):
            memory[offset] = 1
    finally:
        memory.close()
    assert page_faults(pid) - before >= (16 << 20) // 4096
    before = page_faults(pid)
    assert page_faults(pid) - before < 100  # reading the counter does not make them


class _Reads:
    __slots__ = ("slot",)

    def __init__(self) -> None:
        self.slot = 1

    @property
    def prop(self) -> int:
        return 2


def _read_both(obj: _Reads) -> int:
    return obj.slot + obj.prop


def test_a_property_read_that_ran_is_reported_and_a_slot_read_is_not() -> None:
    obj = _Reads()
    for _ in range(100):  # warmed: quickened, and specialized where CPython can
        _read_both(obj)
    code = _read_both.__code__
    assert code in list(code_objects(__name__))
    generic = generic_sites([code])
    sites = unspecialized(generic, executed_offsets(lambda: _read_both(obj)))
    reads = [(site.function, site.argument) for site in sites if "ATTR" in site.opname]
    assert reads == [("_read_both", "prop")]
    assert unspecialized(generic, set()) == []  # nothing ran: nothing reported


def _loop(times: int) -> int:
    total = 0
    for _ in range(times):
        total += 1
    return total


def test_bytecodes_are_counted_per_function_and_grow_with_the_work() -> None:
    key = (__file__, _loop.__code__.co_firstlineno, "_loop")
    once = bytecodes_run(lambda: _loop(1))[key]
    ten = bytecodes_run(lambda: _loop(10))[key]
    eleven = bytecodes_run(lambda: _loop(11))[key]
    assert once > 0
    assert ten - once == 9 * (eleven - ten) > 0  # each turn of the loop costs the same
    assert bytecodes_run(lambda: None)[key] == 0


def _run(cpu_us: float, threads_us: float = 0.0, traced: float = 1.0) -> Run:
    return Run(WrkResult(1.0, 1.0, 1.0, 0), cpu_us, 0.0, threads_us=threads_us, traced=traced)


def test_each_traced_run_is_paired_with_the_untraced_runs_around_it() -> None:
    before = [_run(40.0, 1.0), _run(50.0), _run(40.0)]
    traced = [_run(60.0, 4.0), _run(60.0, traced=0.5), _run(60.0, traced=0.0)]
    after = [_run(44.0, 1.0), _run(50.0), _run(40.0)]
    # (60 - 42) / 1 and (60 - 50) / 0.5, sorted; a round that traced nothing is left out
    assert _paired(before, traced, after, _cpu) == [18.0, 20.0]
    assert _paired(before, traced, after, _threads) == [0.0, 3.0]
