"""A node's own telemetry: Prometheus /metrics, JSON logs carrying the trace of the request they
were written for, and those log lines on the trace in the control plane."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.demo.config import demo_config
from tests.conftest import free_port, sqlite_url
from tests.integration.conftest import NodeProcess, Stack, launch_stack, running, wait_for


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_and_trace_correlated_logs(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    stack = launch_stack(sqlite_url(tmp_path), tmp_path)
    with running(stack, request) as s:
        config = demo_config(s.upstream)
        config["services"].append(
            {
                "name": "dead",
                "url": f"http://127.0.0.1:{free_port()}",  # nothing listens: connection refused
                "retries": 0,
                "routes": [{"name": "dead", "paths": ["/dead"]}],
            }
        )
        s.ok("PUT", "/api/v1/config", json=config)
        dp = s.start_node("dp-1", env={"ACTIVETRACE_LOG_FORMAT": "json"})
        s.wait_connected("dp-1")
        session = s.start_session("dp-1", scope={"route": "dead"}, max_samples=1)
        for _ in range(3):
            assert httpx.get(dp.proxy + "/demo/hello", timeout=5).status_code == 200
        with httpx.Client(timeout=5) as client:  # one keep-alive connection
            assert client.get(dp.proxy + "/dead/x").status_code == 502  # traced: the one sample
            s.wait_session(session["id"], "completed")
            assert client.get(dp.proxy + "/dead/y").status_code == 502  # not traced
        trace_id = s.ok("GET", f"/api/v1/tracing-sessions/{session['id']}/traces")["items"][0][
            "trace_id"
        ]

        metrics = _samples(httpx.get(dp.status + "/metrics", timeout=5).text)
        assert (
            metrics[("activetrace_dp_requests_total", (("route", "demo"), ("status_class", "2xx")))]
            == 3
        )
        assert (
            metrics[("activetrace_dp_requests_total", (("route", "dead"), ("status_class", "5xx")))]
            == 2
        )
        assert metrics[("activetrace_dp_request_duration_seconds_count", (("route", "demo"),))] == 3
        assert metrics[("activetrace_dp_traced_requests_total", ())] == 1
        assert metrics[("activetrace_dp_config_version", ())] >= 1
        assert ("activetrace_dp_stream_reconnects_total", ()) in metrics
        assert ("activetrace_dp_spans_dropped_total", ()) in metrics
        assert ("activetrace_dp_spans_queued", ()) in metrics

        # The proxy's warning about the refused upstream names the trace it happened in.
        def warnings() -> list[dict[str, object]]:
            lines = [
                json.loads(line)
                for line in (tmp_path / "dp-1.log").read_text().splitlines()
                if line.startswith("{")
            ]
            return [
                line for line in lines if "upstream of route dead failed" in str(line["message"])
            ]

        wait_for(lambda: len(warnings()) == 2, "the warnings of both requests to the dead route")
        traced, untraced = warnings()
        assert traced["trace_id"] == trace_id
        assert traced["level"] == "warning"
        assert len(str(traced["span_id"])) == 16
        # the next request on the same connection was not traced: its line names no trace
        assert "trace_id" not in untraced

        # ... and the control plane shows it with the trace.
        logs = s.ok("GET", f"/api/v1/traces/{trace_id}/logs")
        assert any("upstream of route dead failed" in entry["message"] for entry in logs)
        assert all(entry["node_id"] == "dp-1" for entry in logs)


def _tracing_demo_node(s: Stack, *, max_samples: int) -> NodeProcess:
    """dp-1 serving the demo config, with a session tracing every request of the demo route."""
    s.ok("PUT", "/api/v1/config", json=demo_config(s.upstream))
    dp = s.start_node("dp-1")
    s.wait_connected("dp-1")
    s.start_session("dp-1", scope={"route": "demo"}, max_samples=max_samples)
    return dp


async def _load(proxy: str, requests: int, concurrency: int) -> None:
    """``requests`` GETs of /demo/hello, ``concurrency`` at a time; each must answer 200."""
    async with httpx.AsyncClient(base_url=proxy, timeout=10) as client:

        async def worker() -> None:
            for _ in range(requests // concurrency):
                assert (await client.get("/demo/hello")).status_code == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def test_traced_requests_leave_the_young_collector_idle(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The node raises the young generation's threshold (dataplane.node.tune_collector): traced
    requests, 16 at a time, free what they allocate by reference counting, and the collector
    stays idle. At CPython's default of 700 the same load runs ~14 young collections per 1,000
    traced requests. The standard python_gc_* and process_* families are served too."""
    stack = launch_stack(sqlite_url(tmp_path), tmp_path)
    with running(stack, request) as s:
        dp = _tracing_demo_node(s, max_samples=2000)

        def metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return _samples(httpx.get(dp.status + "/metrics", timeout=5).text)

        def young_collections() -> float:
            samples = metrics()
            assert samples[("process_cpu_seconds_total", ())] > 0
            return samples[("python_gc_collections_total", (("generation", "0"),))]

        before = young_collections()
        asyncio.run(_load(dp.proxy, 1600, 16))
        assert young_collections() - before <= 1
        assert metrics()[("activetrace_dp_traced_requests_total", ())] == 1600


def _minor_faults(pid: int) -> int:
    """The process's minor page faults so far (Linux /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_span_export_reuses_its_memory(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The node keeps the memory span export cycles through (dataplane.node.tune_allocator).
    Twice, traced requests run while the control plane is stopped, so their spans wait in the
    node (as when it is slow or restarting), then it resumes and takes them all: the second
    time, that touches almost no fresh pages. With glibc's defaults the first backlog's memory
    was given back once it drained and touched afresh for the second."""
    stack = launch_stack(sqlite_url(tmp_path), tmp_path)
    with running(stack, request) as s:
        dp = _tracing_demo_node(s, max_samples=10_000)
        control_plane = s.processes[1].popen.pid

        def exported() -> bool:
            status: dict[str, int] = httpx.get(dp.status + "/status", timeout=5).json()
            return status["spans_queued"] == 0 and status["spans_dropped"] == 0

        def backlog() -> None:
            os.kill(control_plane, signal.SIGSTOP)
            try:
                asyncio.run(_load(dp.proxy, 2400, 16))
            finally:
                os.kill(control_plane, signal.SIGCONT)
            wait_for(exported, "the backlog to be acknowledged")

        pid = dp.process.popen.pid
        backlog()
        before = _minor_faults(pid)
        backlog()
        faults = _minor_faults(pid) - before
        # ~1,900 with glibc's defaults; 40-130 kept (what the rest of the node touches)
        assert faults < 500, f"{faults} page faults for 2,400 traced requests"
        assert httpx.get(dp.status + "/status", timeout=5).json()["traced"] == 4800
