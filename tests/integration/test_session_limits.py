"""Session limits and selection over real processes: exact max_samples under concurrency, tail
rules, and several sessions on one node."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from controlplane.otlp.codec import parse_json_request
from tests.conftest import sqlite_url
from tests.integration.conftest import Stack, launch_stack, running, wait_for


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("limits")
    with running(launch_stack(sqlite_url(workdir), workdir), request) as s:
        s.start_node("dp-1")
        s.wait_connected("dp-1")
        yield s


def _traces(stack: Stack, session_id: str) -> list[dict[str, Any]]:
    page = stack.ok("GET", f"/api/v1/tracing-sessions/{session_id}/traces", params={"limit": 1000})
    return list(page["items"])


async def _burst(url: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        gate = asyncio.Event()

        async def one() -> int:
            await gate.wait()
            return (await client.get(url)).status_code

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await asyncio.sleep(0)  # every task is parked on the gate before it opens
        gate.set()
        return list(await asyncio.gather(*tasks))


def test_max_samples_is_exact_under_256_concurrent_requests(node: Stack) -> None:
    session = node.start_session(
        "dp-1", scope={"route": "orders"}, max_samples=50, duration_secs=120
    )
    statuses = asyncio.run(_burst(node.nodes["dp-1"].proxy + "/demo/orders", 256))
    assert statuses == [200] * 256
    done = node.wait_session(session["id"], "completed")
    assert done["targets"][0]["samples"] == 50
    assert done["samples"] == 50
    wait_for(lambda: len(_traces(node, session["id"])) == 50, "50 stored traces")
    # Later requests are not traced: the count stays exact.
    httpx.get(node.nodes["dp-1"].proxy + "/demo/orders", timeout=5)
    assert len(_traces(node, session["id"])) == 50
    status = httpx.get(node.nodes["dp-1"].status + "/status", timeout=5).json()
    assert [s["samples"] for s in status["sessions"] if s["id"] == session["id"]] in ([], [50])


def test_tail_rule_keeps_only_matching_responses(node: Stack) -> None:
    session = node.start_session(
        "dp-1",
        scope={"route": "demo"},
        sampling_rule='http.path ^= "/demo/status/" && http.response.status >= 500',
        max_samples=100,
        duration_secs=120,
    )
    assert session["tail"] is True
    proxy = node.nodes["dp-1"].proxy
    for code in (200, 503, 404, 500, 201):
        assert httpx.get(f"{proxy}/demo/status/{code}", timeout=5).status_code == code
    wait_for(lambda: len(_traces(node, session["id"])) == 2, "two kept traces")
    traces = _traces(node, session["id"])
    assert sorted(t["status_code"] for t in traces) == [500, 503]
    current = node.ok("GET", f"/api/v1/tracing-sessions/{session['id']}")
    assert current["targets"][0]["samples"] == 2  # dropped traces do not count
    node.ok("POST", f"/api/v1/tracing-sessions/{session['id']}/stop")


def test_a_request_in_two_sessions_is_recorded_once_per_session(node: Stack) -> None:
    first = node.start_session("dp-1", scope={"service": "demo"}, max_samples=10, duration_secs=120)
    second = node.start_session(
        "dp-1",
        scope={"route": "demo"},
        sampling_rule='http.path == "/demo/hello"',
        max_samples=10,
        duration_secs=120,
    )
    proxy = node.nodes["dp-1"].proxy
    assert httpx.get(proxy + "/demo/hello", headers={"x-request-id": "both"}, timeout=5).is_success
    assert httpx.get(proxy + "/demo/echo", headers={"x-request-id": "one"}, timeout=5).is_success
    wait_for(lambda: len(_traces(node, first["id"])) == 2, "two traces in the first session")
    wait_for(lambda: len(_traces(node, second["id"])) == 1, "one trace in the second session")
    second_trace = _traces(node, second["id"])[0]
    assert second_trace["path"] == "/demo/hello"
    # One recording serves both sessions: the trace is listed in each, its spans stored once.
    assert second_trace["trace_id"] in {t["trace_id"] for t in _traces(node, first["id"])}
    detail = node.ok("GET", f"/api/v1/traces/{second_trace['trace_id']}")
    assert sorted(detail["session_ids"]) == sorted([first["id"], second["id"]])
    own = [s for s in detail["spans"] if s["service_name"] == "activetrace-dataplane"]
    assert len([s for s in own if s["parent_span_id"] is None]) == 1
    for session in (first, second):
        node.ok("POST", f"/api/v1/tracing-sessions/{session['id']}/stop")


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_export_cli_writes_the_session_as_otlp(node: Stack, tmp_path: Path, fmt: str) -> None:
    session = node.start_session("dp-1", scope={"route": "demo"}, max_samples=3, duration_secs=120)
    for _ in range(3):
        assert httpx.get(node.nodes["dp-1"].proxy + "/demo/hello", timeout=5).is_success
    node.wait_session(session["id"], "completed")
    traces = {t["trace_id"] for t in _traces(node, session["id"])}
    assert len(traces) == 3
    stored = sum(len(node.ok("GET", f"/api/v1/traces/{t}")["spans"]) for t in traces)
    output = tmp_path / f"session.{fmt}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane.cli",
            "export",
            session["id"],
            "-o",
            str(output),
            "--api",
            node.api,
            "--format",
            fmt,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    request = trace_service_pb2.ExportTraceServiceRequest()
    if fmt == "json":
        request = parse_json_request(output.read_bytes())  # OTLP/JSON: hex IDs
    else:
        request.ParseFromString(output.read_bytes())
    spans = [
        span
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert {span.trace_id.hex() for span in spans} == traces
    # The demo upstream's own spans may still be arriving while the export runs.
    after = sum(len(node.ok("GET", f"/api/v1/traces/{t}")["spans"]) for t in traces)
    assert stored <= len(spans) <= after
