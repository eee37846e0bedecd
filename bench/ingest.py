"""Span ingest throughput into SQLite and PostgreSQL, through a real control plane process.

Two paths, each measured from the first message sent to the last acknowledgement:
- the cluster stream: several nodes (gRPC clients speaking the cluster protocol) send span
  batches of 512 spans (a node sends up to 2,048 per batch) and wait for their BatchAcks;
- the OTLP receiver: ``TraceService/Export`` calls with spans of traced requests.

Run: ``.venv/bin/python -m bench.ingest [--spans N] [--nodes K]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.gateway import free_port
from controlplane.launcher import Supervised, control_plane_args, start, stop_all, wait_until
from dataplane.tracing.export import SpanExport
from dataplane.tracing.otlp import resource
from dataplane.tracing.spans import KIND_SERVER, Span
from protos.activetrace.cluster.v1 import cluster_pb2 as pb
from protos.activetrace.cluster.v1 import cluster_pb2_grpc as pb_grpc

SPANS_PER_TRACE = 16
BATCH_SPANS = 512


def _traces(count: int) -> list[tuple[bytes, list[Span]]]:
    """Traces shaped like the gateway's: a root with ~25 attributes and phase spans."""
    out = []
    for _ in range(count):
        root = Span(
            "GET /demo/orders",
            b"",
            1_000,
            KIND_SERVER,
            {
                "http.request.method": "GET",
                "url.path": "/demo/orders",
                "url.scheme": "http",
                "url.full": "http://127.0.0.1:8000/demo/orders",
                "http.route": "/demo/orders",
                "http.response.status_code": 200,
                "client.address": "127.0.0.1",
                "client.port": 51234,
                "server.address": "127.0.0.1",
                "server.port": 8000,
                "network.protocol.version": "1.1",
                "user_agent.original": "curl/8.0",
                "gateway.request.id": uuid.uuid4().hex,
                "gateway.route.name": "orders",
                "gateway.service.name": "demo",
                "gateway.latency.total_ms": 1.2,
            },
        )
        root.end(900_000)
        spans = [root]
        for index in range(SPANS_PER_TRACE - 1):
            span = Span(
                f"gateway.phase.{index}",
                root.span_id,
                1_000 + index,
                attributes={"gateway.plugin.name": "key-auth", "gateway.plugin.id": "x" * 36},
            )
            span.end(2_000 + index)
            spans.append(span)
        out.append((uuid.uuid4().bytes, spans))
    return out


def _batches(node_id: str, session_id: str, traces: int) -> list[pb.NodeMessage]:
    sent: list[pb.NodeMessage] = []
    export = SpanExport(
        node_resource=resource(
            {"service.name": "activetrace-dataplane", "gateway.node.id": node_id}
        ),
        version="bench",
        batch_spans=BATCH_SPANS,
        max_spans=10**9,
    )

    def send(message: pb.NodeMessage | bytes) -> bool:
        # what a node sends: serialized batches (parsed here once, outside the measurement)
        sent.append(pb.NodeMessage.FromString(message) if isinstance(message, bytes) else message)
        return True

    export.sender = send
    for trace_id, spans in _traces(traces):
        export.submit((session_id,), trace_id, spans)
    export.flush()
    return sent


async def _node(
    cluster: str, node_id: str, batches: list[pb.NodeMessage], ready: asyncio.Event
) -> None:
    async with grpc.aio.insecure_channel(cluster) as channel:
        call = pb_grpc.ClusterServiceStub(channel).Connect()
        await call.write(
            pb.NodeMessage(hello=pb.Hello(node_id=node_id, hostname="bench", version="bench"))
        )
        await ready.wait()
        pending = {b.span_batch.batch_id for b in batches}

        async def send() -> None:
            for batch in batches:
                await call.write(batch)

        sender = asyncio.create_task(send())
        while pending:
            message = await call.read()
            if message is grpc.aio.EOF:
                raise RuntimeError("stream ended")
            assert isinstance(message, pb.CpMessage)
            if message.WhichOneof("message") == "batch_ack":
                pending.discard(message.batch_ack.batch_id)
        await sender
        await call.done_writing()


async def _cluster_path(api: str, cluster: str, nodes: int, spans: int) -> float:
    node_ids = [f"bench-{i}" for i in range(nodes)]
    connected = asyncio.Event()
    hello_only = [asyncio.create_task(_node(cluster, n, [], connected)) for n in node_ids]
    async with httpx.AsyncClient(base_url=api) as client:
        while {n["id"] for n in (await client.get("/api/v1/nodes")).json()} < set(node_ids):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        connected.set()
        await asyncio.gather(*hello_only)
        response = await client.post(
            "/api/v1/tracing-sessions",
            json={"targets": node_ids, "max_samples": 10000, "duration_secs": 3600},
        )
        session_id = response.json()["id"]
    traces_per_node = spans // SPANS_PER_TRACE // nodes
    work = {n: _batches(n, session_id, traces_per_node) for n in node_ids}
    total = sum(
        len(ss.spans)
        for b in work.values()
        for m in b
        for rs in m.span_batch.resource_spans
        for ss in rs.scope_spans
    )
    go = asyncio.Event()
    tasks = [asyncio.create_task(_node(cluster, n, work[n], go)) for n in node_ids]
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    return total / (time.perf_counter() - started)


async def _receiver_path(otlp: str, api: str, spans: int) -> float:
    async with httpx.AsyncClient(base_url=api) as client:
        sessions = (await client.get("/api/v1/tracing-sessions")).json()["items"]
        traces = (
            await client.get(
                f"/api/v1/tracing-sessions/{sessions[0]['id']}/traces", params={"limit": 1000}
            )
        ).json()["items"]
    trace_ids = [bytes.fromhex(t["trace_id"]) for t in traces]
    requests = []
    per_request = BATCH_SPANS
    for start_index in range(0, spans, per_request):
        request = trace_service_pb2.ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "orders-service"
        scope = rs.scope_spans.add()
        for index in range(start_index, min(spans, start_index + per_request)):
            span = scope.spans.add(
                trace_id=trace_ids[index % len(trace_ids)],
                span_id=uuid.uuid4().bytes[:8],
                parent_span_id=b"\x01" * 8,
                name="GET /orders",
                kind=2,
                start_time_unix_nano=1_000,
                end_time_unix_nano=2_000,
            )
            span.attributes.add(key="http.route").value.string_value = "/orders"
            span.attributes.add(key="http.response.status_code").value.int_value = 200
        requests.append(request)
    async with grpc.aio.insecure_channel(otlp) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        for chunk in range(0, len(requests), 4):  # 4 exports in flight, like a busy collector
            await asyncio.gather(*(stub.Export(r) for r in requests[chunk : chunk + 4]))
        return spans / (time.perf_counter() - started)


async def _postgres_url() -> str:
    name = f"activetrace_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def _run(label: str, url: str, workdir: Path, nodes: int, spans: int) -> tuple[float, float]:
    api_port, cluster_port, otlp_port = free_port(), free_port(), free_port()
    process: Supervised = start(
        "controlplane",
        control_plane_args(
            database_url=url,
            api_port=api_port,
            cluster_port=cluster_port,
            otlp_grpc_port=otlp_port,
            extra=("--log-level", "warning"),
        ),
        log=workdir / f"{label}.log",
    )
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_until(
            lambda: httpx.get(api + "/healthz").status_code == 200, what="CP", processes=[process]
        )
        cluster_rate = asyncio.run(_cluster_path(api, f"127.0.0.1:{cluster_port}", nodes, spans))
        receiver_rate = asyncio.run(_receiver_path(f"127.0.0.1:{otlp_port}", api, spans // 2))
        return cluster_rate, receiver_rate
    finally:
        stop_all([process])


def main() -> None:
    """Measure and print spans/s per database and path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--nodes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results = {
            "SQLite": _run(
                "sqlite",
                f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
                workdir,
                args.nodes,
                args.spans,
            ),
            "PostgreSQL": _run(
                "postgres", asyncio.run(_postgres_url()), workdir, args.nodes, args.spans
            ),
        }
    print(
        f"\ningest throughput ({args.spans} spans via {args.nodes} nodes, batches of {BATCH_SPANS})"
    )
    print(f"{'database':<12} {'cluster stream':>16} {'OTLP receiver':>16}")
    for name, (cluster, receiver) in results.items():
        print(f"{name:<12} {cluster:>12,.0f} sp/s {receiver:>12,.0f} sp/s")
    goal = results["PostgreSQL"][0]
    print(f"PostgreSQL cluster ingest vs goal 50,000 spans/s: {goal / 50_000:.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
