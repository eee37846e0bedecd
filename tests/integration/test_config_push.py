"""Config reaches running nodes without dropping requests, and nodes start from their cached
config when the control plane is unreachable (Kong's hybrid mode behaviour)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from controlplane.demo.config import demo_config
from controlplane.launcher import stop_all
from tests.conftest import sqlite_url
from tests.integration.conftest import Stack, launch_stack, running, wait_for


def test_new_config_applies_while_requests_are_in_flight(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with running(launch_stack(sqlite_url(tmp_path), tmp_path), request) as s:
        dp = s.start_node("dp-1")
        s.wait_connected("dp-1")
        results: list[int] = []
        started = threading.Event()

        def slow() -> None:
            with httpx.stream("GET", dp.proxy + "/demo/slow?ms=1500", timeout=10) as response:
                started.set()  # the response head arrived only after the upstream slept
                response.read()
                results.append(response.status_code)

        # The request is routed and proxied before the change: start it, then change config.
        thread = threading.Thread(target=slow)
        thread.start()
        wait_for(lambda: _upstream_busy(s), "the slow request to reach the upstream")
        config = demo_config(s.upstream)
        config["services"][0]["routes"] = [
            {"name": "renamed", "paths": ["/renamed"], "strip_path": True}
        ]
        version = s.ok("PUT", "/api/v1/config", json=config)["version"]
        wait_for(
            lambda: any(n["config_version"] == version for n in s.ok("GET", "/api/v1/nodes")),
            "the node to apply the new config",
        )
        assert httpx.get(dp.proxy + "/demo/hello", timeout=5).status_code == 404
        assert httpx.get(dp.proxy + "/renamed/demo/hello", timeout=5).status_code == 200
        thread.join(10)
        assert started.is_set()
        assert results == [200]  # the in-flight request finished on the config it started with


def _upstream_busy(stack: Stack) -> bool:
    """The node has started serving the slow request (its first proxied request)."""
    status = httpx.get(stack.nodes["dp-1"].status + "/status", timeout=5).json()
    return bool(status["requests"] >= 1)


def test_node_starts_from_its_cache_without_the_control_plane(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with running(launch_stack(sqlite_url(tmp_path), tmp_path), request) as s:
        first = s.start_node("dp-1")
        s.wait_connected("dp-1")
        assert httpx.get(first.proxy + "/demo/hello", timeout=5).status_code == 200
        cache = tmp_path / "cache" / "dp-1.config.json"
        wait_for(cache.exists, "the config cache")

        control_plane = next(p for p in s.processes if p.name == "controlplane")
        stop_all([control_plane, first.process])
        s.processes.remove(control_plane)
        s.processes.remove(first.process)

        again = s.start_node("dp-1")  # the CP is gone: only the cache can route this
        response = httpx.get(again.proxy + "/demo/hello", timeout=5)
        assert response.status_code == 200
        assert response.json() == {"message": "hello from the demo upstream"}
        assert "starting from cached config" in (tmp_path / "dp-1.log").read_text()
