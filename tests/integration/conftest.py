"""A real system on loopback: control plane, data plane nodes and the demo upstream."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.demo.config import demo_config
from controlplane.launcher import (
    Supervised,
    control_plane_args,
    node_args,
    start,
    stop_all,
    wait_until,
)
from tests.conftest import free_port


@dataclass
class NodeProcess:
    """A running data plane node."""

    node_id: str
    proxy: str
    status: str
    process: Supervised


@dataclass
class Stack:
    """The processes of one test and how to reach them."""

    api: str
    cluster_port: int
    upstream: str
    upstream_port: int
    database_url: str
    workdir: Path
    processes: list[Supervised] = field(default_factory=list)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    cluster_token: str | None = None
    admin_token: str | None = None

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to the control plane API (with the admin token when there is one)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if self.admin_token is not None:
            headers.setdefault("authorization", f"Bearer {self.admin_token}")
        return httpx.request(method, self.api + path, timeout=10, headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request that must succeed; returns the JSON body."""
        response = self.call(method, path, **kwargs)
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else None

    def start_node(
        self, node_id: str, *extra: str, env: dict[str, str] | None = None
    ) -> NodeProcess:
        """Start a data plane node and wait until it serves its status endpoint."""
        proxy_port, status_port = free_port(), free_port()
        args = node_args(
            node_id=node_id,
            cluster_port=self.cluster_port,
            proxy_port=proxy_port,
            status_port=status_port,
            cache_dir=self.workdir / "cache",
            proxy_host="127.0.0.1",
            extra=extra,
        )
        log = self.workdir / f"{node_id}.log"
        process = start(node_id, args, log=log, env=_env(env, self.cluster_token))
        self.processes.append(process)
        node = NodeProcess(
            node_id, f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{status_port}", process
        )
        wait_until(
            lambda: httpx.get(node.status + "/status", timeout=1).status_code == 200,
            what=f"{node_id} to start",
            processes=[process],
        )
        self.nodes[node_id] = node
        return node

    def wait_connected(self, *node_ids: str) -> None:
        """Wait until the control plane lists these nodes as connected."""

        def connected() -> bool:
            nodes = self.ok("GET", "/api/v1/nodes", params={"status": "connected"})
            return {n["id"] for n in nodes} >= set(node_ids)

        wait_until(connected, what=f"{node_ids} to connect", processes=self.processes)

    def wait_session(self, session_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        """Wait until a session reaches one of ``statuses``; returns it."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            found.update(self.ok("GET", f"/api/v1/tracing-sessions/{session_id}"))
            return found["status"] in statuses

        wait_until(
            reached,
            what=f"session {session_id} to be {statuses}",
            timeout=timeout,
            processes=self.processes,
        )
        return found

    def start_session(self, node_id: str, **body: Any) -> dict[str, Any]:
        """Create a session targeting ``node_id`` (``body``: the rest of the API's request) and
        wait until that node runs it; returns the session as created."""
        session: dict[str, Any] = self.ok(
            "POST", "/api/v1/tracing-sessions", json={"targets": [node_id], **body}
        )
        self.wait_target_state(session["id"], node_id, "active")
        return session

    def wait_target_state(self, session_id: str, node_id: str, state: str) -> None:
        """Wait until a node reports ``state`` for a session."""

        def reached() -> bool:
            session = self.ok("GET", f"/api/v1/tracing-sessions/{session_id}")
            return any(t["node_id"] == node_id and t["state"] == state for t in session["targets"])

        wait_until(reached, what=f"{node_id} {state} for {session_id}", processes=self.processes)

    def logs(self) -> str:
        """Every process log, for failure messages."""
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.workdir.glob("*.log"))
        )


def _env(extra: dict[str, str] | None, cluster_token: str | None) -> dict[str, str]:
    env = {"ACTIVETRACE_LOG_FORMAT": "text", "ACTIVETRACE_HEARTBEAT_INTERVAL_SECS": "1"}
    if cluster_token:
        env["ACTIVETRACE_CLUSTER_TOKEN"] = cluster_token
    env.update(extra or {})
    return env


def launch_stack(
    database_url: str,
    workdir: Path,
    *,
    cluster_token: str | None = None,
    admin_token: str | None = None,
    cp_env: dict[str, str] | None = None,
    cp_args: Sequence[str] = (),
) -> Stack:
    """Start the demo upstream and a control plane with the demo config applied."""
    api_port, cluster_port, otlp_port, upstream_port = (free_port() for _ in range(4))
    stack = Stack(
        api=f"http://127.0.0.1:{api_port}",
        cluster_port=cluster_port,
        upstream=f"http://127.0.0.1:{upstream_port}",
        upstream_port=upstream_port,
        database_url=database_url,
        workdir=workdir,
        cluster_token=cluster_token,
        admin_token=admin_token,
    )
    stack.processes.append(
        start(
            "upstream",
            [
                "controlplane.cli",
                "demo-upstream",
                "--port",
                str(upstream_port),
                "--otlp-endpoint",
                f"http://127.0.0.1:{otlp_port}",
            ],
            log=workdir / "upstream.log",
        )
    )
    stack.processes.append(
        start(
            "controlplane",
            control_plane_args(
                database_url=database_url,
                api_port=api_port,
                cluster_port=cluster_port,
                otlp_grpc_port=otlp_port,
                host="127.0.0.1",
                extra=cp_args,
            ),
            log=workdir / "controlplane.log",
            env=_env(
                {
                    **({"ACTIVETRACE_ADMIN_TOKEN": admin_token} if admin_token else {}),
                    **(cp_env or {}),
                },
                cluster_token,
            ),
        )
    )
    try:
        wait_until(
            lambda: httpx.get(stack.api + "/healthz", timeout=1).status_code == 200,
            what="the control plane",
            processes=stack.processes,
        )
        wait_until(
            lambda: httpx.get(stack.upstream + "/healthz", timeout=1).status_code == 200,
            what="the demo upstream",
            processes=stack.processes,
        )
        stack.ok("PUT", "/api/v1/config", json=demo_config(stack.upstream))
    except BaseException:
        stop_all(stack.processes)
        print(stack.logs())
        raise
    return stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the test item (fixtures print logs on failure)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@contextlib.contextmanager
def running(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Stop the stack's processes afterwards; print their logs when the test failed."""
    try:
        yield stack
    finally:
        stop_all(stack.processes)
        failed = any(
            getattr(getattr(request.node, f"report_{when}", None), "failed", False)
            for when in ("setup", "call")
        )
        if failed:
            print(stack.logs())


@pytest.fixture
def stack(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """CP + demo upstream + dp-1 + dp-2, all connected, demo config applied."""
    with running(launch_stack(database_url, tmp_path), request) as started:
        started.start_node("dp-1")
        started.start_node("dp-2")
        started.wait_connected("dp-1", "dp-2")
        yield started


def wait_for(condition: Any, what: str, timeout: float = 20) -> None:
    """Poll until ``condition()`` is true (integration tests wait on state, not on time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
