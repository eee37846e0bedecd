"""Browser tests of the viewer: a real control plane, Debian's Chromium driven by Playwright.

The control plane is a real process with an admin token. Spans reach it as they do in
production: nodes (here fake ones speaking the real cluster protocol) send span batches over
their gRPC stream, and the upstream service exports its own spans to the OTLP receiver.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from playwright.sync_api import Browser, Page, expect, sync_playwright

from controlplane.launcher import stop_all
from protos.activetrace.cluster.v1 import cluster_pb2 as pb
from protos.activetrace.cluster.v1 import cluster_pb2_grpc as pb_grpc
from tests.conftest import sqlite_url
from tests.integration.conftest import (  # the hook records reports: `running` prints logs
    Stack,
    launch_stack,
    pytest_runtest_makereport,  # noqa: F401
    running,
    wait_for,
)
from tests.ui.gateway_traces import GatewayTrace, gateway_trace

CHROMIUM = Path(os.environ.get("ACTIVETRACE_CHROMIUM", "/usr/bin/chromium"))
ADMIN_TOKEN = "ui-test-admin-token"
TOKEN_KEY = "activetrace.admin-token"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WAIT_SECS = 15.0

expect.set_options(timeout=15_000)


class FakeNode:
    """A data plane node that proxies nothing: it speaks the cluster protocol and sends the
    spans a test gives it, acknowledging sessions the way a node does.

    Like a real node it reconnects when its stream ends, says which sessions it runs in its
    Hello, and resends the span batches that were not acknowledged.
    """

    def __init__(self, node_id: str, cluster: str, *, labels: dict[str, str]) -> None:
        self.node_id = node_id
        self.labels = labels
        self.unacked: dict[str, pb.NodeMessage] = {}
        self.acks: dict[str, threading.Event] = {}
        self.sessions: dict[str, str] = {}  # session ID -> state
        self.samples: Counter[str] = Counter()
        self.changed = threading.Condition()
        self.config = ("", 0)
        self.requests = 0
        self.connections = 0
        self.stopped = threading.Event()
        self.outbox: queue.Queue[pb.NodeMessage | None] = queue.Queue()
        self.channel = grpc.insecure_channel(cluster)
        self.stub = pb_grpc.ClusterServiceStub(self.channel)
        self.call: Any = None
        self.threads = [
            threading.Thread(target=self._run, name=f"{node_id}-stream", daemon=True),
            threading.Thread(target=self._beat, name=f"{node_id}-heartbeat", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            outbox: queue.Queue[pb.NodeMessage | None] = queue.Queue()
            with self.changed:
                running = [s for s, state in self.sessions.items() if state == "active"]
                outbox.put(
                    pb.NodeMessage(
                        hello=pb.Hello(
                            node_id=self.node_id,
                            hostname=f"{self.node_id}.local",
                            version="0.1.0",
                            labels=self.labels,
                            config_hash=self.config[0],
                            session_ids=running,
                        )
                    )
                )
                for batch in self.unacked.values():
                    outbox.put(batch)
                self.outbox = outbox
                self.call = self.stub.Connect(iter(outbox.get, None))
                self.connections += 1
            try:
                for message in self.call:
                    self._handle(message)
            except grpc.RpcError:
                pass  # the stream ended: reconnect, as a node does
            outbox.put(None)
            self.stopped.wait(0.2)

    def _handle(self, message: pb.CpMessage) -> None:
        kind = message.WhichOneof("message")
        with self.changed:
            if kind == "config":
                self.config = (message.config.hash, message.config.version)
            elif kind == "batch_ack":
                self.unacked.pop(message.batch_ack.batch_id, None)
                self.acks[message.batch_ack.batch_id].set()
            elif kind == "session_start":
                session_id = message.session_start.session_id
                self.sessions[session_id] = "active"
                self.progress(session_id, pb.SESSION_STATE_ACTIVE)
            elif kind == "session_stop":
                self.sessions[message.session_stop.session_id] = "stopped"
                self.progress(message.session_stop.session_id, pb.SESSION_STATE_STOPPED)
            self.changed.notify_all()

    def _send(self, message: pb.NodeMessage) -> None:
        with self.changed:
            self.outbox.put(message)

    def _beat(self) -> None:
        while not self.stopped.wait(0.3):
            config_hash, version = self.config
            self._send(
                pb.NodeMessage(
                    heartbeat=pb.Heartbeat(
                        requests=self.requests,
                        traced=sum(self.samples.values()),
                        config_hash=config_hash,
                        config_version=version,
                    )
                )
            )

    def progress(self, session_id: str, state: pb.SessionState.ValueType) -> None:
        """Report samples taken and state for a session."""
        self._send(
            pb.NodeMessage(
                session_progress=pb.SessionProgress(
                    session_id=session_id, samples=self.samples[session_id], state=state
                )
            )
        )

    def wait_session(self, session_id: str) -> None:
        """Wait until the control plane started the session on this node."""
        with self.changed:
            assert self.changed.wait_for(lambda: session_id in self.sessions, WAIT_SECS), (
                f"{self.node_id} never received session {session_id}"
            )

    def send(self, session_id: str, trace: GatewayTrace) -> None:
        """Send a trace's spans in a batch, wait for the ack, report the sample."""
        batch_id = uuid.uuid4().hex
        batch = pb.NodeMessage(
            span_batch=pb.SpanBatch(
                batch_id=batch_id, session_ids=[session_id], resource_spans=[trace.node_spans()]
            )
        )
        acked = threading.Event()
        with self.changed:
            self.acks[batch_id] = acked
            self.unacked[batch_id] = batch
            self.outbox.put(batch)
        assert acked.wait(WAIT_SECS), f"batch {batch_id} not acknowledged"
        self.requests += 1
        self.samples[session_id] += 1
        self.progress(session_id, pb.SESSION_STATE_ACTIVE)

    def close(self) -> None:
        """End the stream."""
        self.stopped.set()
        with self.changed:
            self.outbox.put(None)
            if self.call is not None:
                self.call.cancel()
        for thread in self.threads:
            thread.join(5)
        self.channel.close()


@dataclass
class Viewer:
    """The control plane under test and the fake nodes connected to it."""

    stack: Stack
    nodes: dict[str, FakeNode] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where the viewer is served."""
        return self.stack.api + "/"

    def create_session(self, **fields: Any) -> dict[str, Any]:
        """Create a session through the API and wait until its nodes run it."""
        body = {"name": "checkout latency", "targets": ["dp-1"], "max_samples": 50, **fields}
        session: dict[str, Any] = self.stack.ok("POST", "/api/v1/tracing-sessions", json=body)
        for node_id in body["targets"]:
            self.nodes[node_id].wait_session(session["id"])
        return session

    def trace(self, session_id: str, node_id: str = "dp-1", **shape: Any) -> GatewayTrace:
        """One request traced by a node, with the upstream service's spans (via OTLP/HTTP)."""
        trace = gateway_trace(node_id, session_id, **shape)
        self.nodes[node_id].send(session_id, trace)
        export = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace.service_spans()])
        response = httpx.post(
            self.stack.api + "/v1/traces",
            content=export.SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return trace


@pytest.fixture(scope="package")
def chromium() -> Path:
    """Debian's Chromium; without it the browser tests fail in CI and are skipped elsewhere."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"Chromium not found at {CHROMIUM}: run scripts/bootstrap (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="package")
def browser(chromium: Path) -> Iterator[Browser]:
    """One headless Chromium for every browser test."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="package")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    """A control plane (SQLite, admin token, demo config) with fake nodes dp-1 and dp-2."""
    workdir = tmp_path_factory.mktemp("viewer")
    stack = launch_stack(sqlite_url(workdir), workdir, admin_token=ADMIN_TOKEN)
    started = Viewer(stack)
    try:
        cluster = f"127.0.0.1:{stack.cluster_port}"
        started.nodes["dp-1"] = FakeNode("dp-1", cluster, labels={"zone": "eu-west-1a"})
        started.nodes["dp-2"] = FakeNode("dp-2", cluster, labels={"zone": "eu-west-1b"})
        retired = FakeNode("dp-retired", cluster, labels={"zone": "eu-west-1c"})
        stack.wait_connected("dp-1", "dp-2", "dp-retired")
        retired.close()  # a node the control plane has seen, now gone
        wait_for(
            lambda: stack.ok("GET", "/api/v1/nodes/dp-retired")["status"] == "disconnected",
            "dp-retired to be disconnected",
        )
        yield started
    except BaseException:
        print(stack.logs())
        raise
    finally:
        for node in started.nodes.values():
            node.close()
        stop_all(stack.processes)


def _watch(page: Page) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def dialog(opened: Any) -> None:
        dialogs.append(opened.message)
        opened.dismiss()

    page.on("dialog", dialog)
    return errors, dialogs


@contextlib.contextmanager
def _signed_in(browser: Browser, base_url: str) -> Iterator[Page]:
    """A page whose session storage holds the admin token; fails the test on script errors
    and on any alert/confirm/prompt, which would mean captured content ran as code."""
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, base_url=base_url, accept_downloads=True
    )
    context.add_init_script(
        f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(ADMIN_TOKEN)})"
    )
    opened = context.new_page()
    errors, dialogs = _watch(opened)
    yield opened
    context.close()
    assert errors == [], errors
    assert dialogs == [], dialogs


@pytest.fixture
def page(browser: Browser, viewer: Viewer) -> Iterator[Page]:
    """A signed-in page of the viewer fed by fake nodes."""
    with _signed_in(browser, viewer.stack.api) as opened:
        yield opened


@pytest.fixture
def anonymous_page(browser: Browser, viewer: Viewer) -> Iterator[Page]:
    """A page of a browser that has no token yet."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=viewer.stack.api
    )
    opened = context.new_page()
    errors, dialogs = _watch(opened)
    yield opened
    context.close()
    assert errors == [], errors
    assert dialogs == [], dialogs


@pytest.fixture
def screenshot() -> Callable[[Page, str], None]:
    """Save a screenshot of the page for the docs (docs/screenshots/NAME.png)."""

    def save(page: Page, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save


def _live_config(upstream: str) -> dict[str, Any]:
    """The demo service with a plugin in every phase on its orders route."""
    return {
        "_format_version": "1.0",
        "consumers": [{"username": "web", "keyauth_credentials": [{"key": "web-key"}]}],
        "services": [
            {
                "name": "demo",
                "url": upstream,
                "routes": [
                    {"name": "demo", "paths": ["/demo"], "strip_path": False},
                    {
                        "name": "orders",
                        "paths": ["/demo/orders"],
                        "strip_path": False,
                        "plugins": [
                            {"name": "key-auth", "config": {"key_names": ["apikey"]}},
                            {"name": "rate-limiting", "config": {"minute": 1000}},
                            {
                                "name": "request-transformer",
                                "config": {"add": {"headers": ["x-traced:yes"]}},
                            },
                            {
                                "name": "response-transformer",
                                "config": {"add": {"headers": ["x-gateway:activetrace"]}},
                            },
                            {
                                "name": "http-log",
                                "config": {"http_endpoint": f"{upstream}/demo/echo"},
                            },
                        ],
                    },
                ],
            }
        ],
    }


@pytest.fixture
def live(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The real system: control plane, demo upstream and data plane node dp-1, with plugins."""
    stack = launch_stack(sqlite_url(tmp_path), tmp_path, admin_token=ADMIN_TOKEN)
    with running(stack, request) as started:
        started.ok("PUT", "/api/v1/config", json=_live_config(started.upstream))
        started.start_node("dp-1")
        started.wait_connected("dp-1")
        yield started


@pytest.fixture
def live_page(browser: Browser, live: Stack) -> Iterator[Page]:
    """A signed-in page of the viewer of the real system."""
    with _signed_in(browser, live.api) as opened:
        yield opened
