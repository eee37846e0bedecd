"""The span catalogue (SPANS.md) over real processes: one node, real upstreams, real plugins.

Each test sends one request with its own ``x-request-id`` and reads the stored trace back from
the control plane's API, then checks names, parent/child structure, nesting of times, kinds,
attributes and status.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, sqlite_url
from tests.integration.conftest import Stack, launch_stack, running, wait_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
BODY_MAX = 64


@dataclass
class Trace:
    """One stored trace, indexed for assertions."""

    spans: list[dict[str, Any]]

    @property
    def root(self) -> dict[str, Any]:
        roots = [
            s
            for s in self.spans
            if s["kind"] == "SERVER" and s["service_name"] == "activetrace-dataplane"
        ]
        assert len(roots) == 1, [s["name"] for s in self.spans]
        return roots[0]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"] == name]

    def one(self, name: str) -> dict[str, Any]:
        found = self.named(name)
        assert len(found) == 1, (name, [s["name"] for s in self.spans])
        return found[0]

    def children(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(
            (s for s in self.spans if s["parent_span_id"] == span["span_id"]),
            key=lambda s: s["start_time_unix_nano"],
        )

    def names(self) -> set[str]:
        return {s["name"] for s in self.spans}

    def check_structure(self) -> None:
        """Every span's parent is in the trace (or outside it for the root) and times nest."""
        by_id = {s["span_id"]: s for s in self.spans}
        root = self.root
        for span in self.spans:
            assert span["start_time_unix_nano"] <= span["end_time_unix_nano"], span["name"]
            if span is root:
                continue
            parent = by_id.get(span["parent_span_id"])
            assert parent is not None, f"{span['name']} has no parent in the trace"
            if span["service_name"] == "activetrace-dataplane":
                assert parent["start_time_unix_nano"] <= span["start_time_unix_nano"], span["name"]
                assert span["end_time_unix_nano"] <= parent["end_time_unix_nano"], (
                    span["name"],
                    parent["name"],
                )


class Catalogue:
    """A running stack with sessions tracing every service of the catalogue config."""

    def __init__(self, stack: Stack, sessions: dict[str, str]) -> None:
        self.stack = stack
        self.sessions = sessions
        self.proxy = stack.nodes["dp-1"].proxy
        self._seen: dict[str, Trace] = {}

    def send(self, method: str, path: str, request_id: str, **kwargs: Any) -> httpx.Response:
        headers = {"x-request-id": request_id, **(kwargs.pop("headers", None) or {})}
        return httpx.request(method, self.proxy + path, headers=headers, timeout=10, **kwargs)

    def trace(self, service: str, request_id: str) -> Trace:
        """The stored trace of the request with ``request_id`` (waits for it to arrive)."""
        session_id = self.sessions[service]
        found: list[Trace] = []

        def arrived() -> bool:
            page = self.stack.ok("GET", f"/api/v1/tracing-sessions/{session_id}/traces")
            for row in page["items"]:
                detail = self.stack.ok("GET", f"/api/v1/traces/{row['trace_id']}")
                trace = Trace(detail["spans"])
                rid = trace.root["attributes"].get("gateway.request.id")
                if rid == request_id:
                    found.append(trace)
                    return True
            return False

        wait_for(arrived, f"the trace of {request_id}")
        return found[0]


def _catalogue_config(upstream: str) -> dict[str, Any]:
    refused = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    return {
        "_format_version": "1.0",
        "upstreams": [
            {
                "name": "refused.upstream",
                "targets": [{"target": t} for t in refused],
                "healthchecks": {"passive": {"tcp_failures": 0}},
            }
        ],
        "consumers": [{"username": "alice", "keyauth_credentials": [{"key": "alice-key"}]}],
        "services": [
            {
                "name": "catalogue",
                "url": f"{upstream}/demo",
                "retries": 0,
                "routes": [
                    {"name": "open", "paths": ["/open"]},
                    {
                        "name": "secure",
                        "paths": ["/secure"],
                        "plugins": [{"name": "key-auth", "config": {"key_names": ["apikey"]}}],
                    },
                    {
                        "name": "filtered",
                        "paths": ["/filtered"],
                        "plugins": [
                            {
                                "name": "response-transformer",
                                "config": {"add": {"json": ["gateway:activetrace"]}},
                            }
                        ],
                    },
                    {
                        "name": "limited",
                        "paths": ["/limited"],
                        "plugins": [
                            {
                                "name": "rate-limiting",
                                "config": {"minute": 1, "policy": "local"},
                            }
                        ],
                    },
                ],
            },
            {
                "name": "slowsvc",
                "url": f"{upstream}/demo",
                "read_timeout": 300,
                "retries": 0,
                "routes": [{"name": "slow", "paths": ["/slow"]}],
            },
            {
                "name": "refusing",
                "host": "refused.upstream",
                "retries": 1,
                "routes": [{"name": "refused", "paths": ["/refused"]}],
            },
        ],
    }


@pytest.fixture(scope="module")
def catalogue(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Catalogue]:
    workdir: Path = tmp_path_factory.mktemp("catalogue")
    stack = launch_stack(sqlite_url(workdir), workdir)
    with running(stack, request) as started:
        started.ok("PUT", "/api/v1/config", json=_catalogue_config(started.upstream))
        started.start_node("dp-1")
        started.wait_connected("dp-1")
        sessions = {}
        for service in ("catalogue", "slowsvc", "refusing"):
            session = started.ok(
                "POST",
                "/api/v1/tracing-sessions",
                json={
                    "name": service,
                    "targets": ["dp-1"],
                    "scope": {"service": service},
                    "max_samples": 1000,
                    "duration_secs": 600,
                    "capture": ["headers", "body"],
                    "body_max_bytes": BODY_MAX,
                },
            )
            sessions[service] = session["id"]
        for session_id in sessions.values():
            started.wait_target_state(session_id, "dp-1", "active")
        yield Catalogue(started, sessions)


def test_plain_request(catalogue: Catalogue) -> None:
    response = catalogue.send("GET", "/open/hello?x=1", "plain-1")
    assert response.status_code == 200
    trace = catalogue.trace("catalogue", "plain-1")
    trace.check_structure()
    root = trace.root
    assert root["name"] == "GET /open"
    assert root["status"]["code"] == "UNSET"
    attributes = root["attributes"]
    assert attributes["url.path"] == "/open/hello"
    assert attributes["url.query"] == "x=1"
    assert attributes["http.route"] == "/open"
    assert attributes["http.response.status_code"] == 200
    assert attributes["gateway.route.name"] == "open"
    assert attributes["gateway.service.name"] == "catalogue"
    assert attributes["client.address"] == "127.0.0.1"
    total = attributes["gateway.latency.total_ms"]
    assert total == pytest.approx(
        attributes["gateway.latency.gateway_ms"] + attributes["gateway.latency.upstream_ms"],
        abs=0.01,
    )
    assert [s["name"] for s in trace.children(root)] == [
        "gateway.router",
        "gateway.balancer",
        "gateway.response.write",
    ]
    router = trace.one("gateway.router")["attributes"]
    assert router["gateway.route.id"] == attributes["gateway.route.id"]
    assert router["gateway.router.cache_hit"] in (True, False)
    balancer = trace.one("gateway.balancer")["attributes"]
    assert balancer == {"gateway.upstream.name": "127.0.0.1", "gateway.balancer.tries": 1}
    upstream = trace.one("gateway.upstream")
    assert upstream["kind"] == "CLIENT"
    assert upstream["parent_span_id"] == trace.one("gateway.balancer")["span_id"]
    assert upstream["attributes"]["url.full"].endswith("/demo/hello?x=1")
    assert upstream["attributes"]["network.peer.address"] == "127.0.0.1"
    phases = [s["name"] for s in trace.children(upstream) if s["service_name"] != "demo-upstream"]
    assert phases[-3:] == [
        "gateway.upstream.send_request",
        "gateway.upstream.ttfb",
        "gateway.upstream.read_response",
    ]
    read = trace.one("gateway.upstream.read_response")
    assert read["attributes"]["http.response.body.size"] == len(response.content)


def test_rejected_by_key_auth(catalogue: Catalogue) -> None:
    response = catalogue.send("GET", "/secure/hello", "keyauth-1", headers={"apikey": "wrong"})
    assert response.status_code == 401
    trace = catalogue.trace("catalogue", "keyauth-1")
    trace.check_structure()
    root = trace.root
    assert root["status"]["code"] == "UNSET"  # 4xx is not a server error
    assert root["attributes"]["http.response.status_code"] == 401
    access = trace.one("gateway.access")
    plugin = trace.one("gateway.access.plugin.key-auth")
    assert plugin["parent_span_id"] == access["span_id"]
    assert plugin["attributes"]["gateway.plugin.name"] == "key-auth"
    assert plugin["attributes"]["gateway.plugin.outcome"] == "short_circuit"
    assert plugin["attributes"]["http.response.status_code"] == 401
    assert "gateway.upstream" not in trace.names()
    assert "gateway.balancer" not in trace.names()
    assert root["attributes"]["http.request.header.apikey"] == ["[REDACTED]"]


def test_accepted_by_key_auth_names_the_consumer(catalogue: Catalogue) -> None:
    response = catalogue.send("GET", "/secure/hello", "keyauth-2", headers={"apikey": "alice-key"})
    assert response.status_code == 200
    trace = catalogue.trace("catalogue", "keyauth-2")
    assert trace.root["attributes"]["gateway.consumer.id"]
    assert "gateway.upstream" in trace.names()


def test_rate_limited(catalogue: Catalogue) -> None:
    assert catalogue.send("GET", "/limited/hello", "limit-1").status_code == 200
    response = catalogue.send("GET", "/limited/hello", "limit-2")
    assert response.status_code == 429
    assert response.json()["message"] == "API rate limit exceeded"
    trace = catalogue.trace("catalogue", "limit-2")
    trace.check_structure()
    plugin = trace.one("gateway.access.plugin.rate-limiting")
    assert plugin["attributes"]["gateway.plugin.outcome"] == "short_circuit"
    assert plugin["attributes"]["http.response.status_code"] == 429
    assert trace.root["status"]["code"] == "UNSET"
    assert "gateway.upstream" not in trace.names()


def test_upstream_timeout(catalogue: Catalogue) -> None:
    response = catalogue.send("GET", "/slow/slow?ms=3000", "timeout-1")
    assert response.status_code == 504
    assert response.json()["request_id"] == "timeout-1"
    trace = catalogue.trace("slowsvc", "timeout-1")
    trace.check_structure()
    root = trace.root
    assert root["status"]["code"] == "ERROR"
    assert root["attributes"]["error.type"] == "timeout"
    upstream = trace.one("gateway.upstream")
    assert upstream["status"]["code"] == "ERROR"
    assert upstream["attributes"]["error.type"] == "timeout"
    assert "http.response.status_code" not in upstream["attributes"]
    assert any(e["name"] == "exception" for e in upstream["events"])
    duration_ms = (upstream["end_time_unix_nano"] - upstream["start_time_unix_nano"]) / 1e6
    assert duration_ms >= 290  # the read timeout (300 ms), less the event loop timer granularity


def test_connection_refused_with_retries(catalogue: Catalogue) -> None:
    response = catalogue.send("GET", "/refused/anything", "refused-1")
    assert response.status_code == 502
    trace = catalogue.trace("refusing", "refused-1")
    trace.check_structure()
    balancer = trace.one("gateway.balancer")
    assert balancer["attributes"]["gateway.balancer.tries"] == 2
    assert balancer["attributes"]["gateway.upstream.name"] == "refused.upstream"
    tries = trace.named("gateway.upstream")
    assert len(tries) == 2
    assert {t["parent_span_id"] for t in tries} == {balancer["span_id"]}
    assert [t["attributes"].get("http.request.resend_count") for t in tries] == [None, 1]
    assert {t["attributes"]["server.port"] for t in tries} == {
        int(t["attributes"]["url.full"].split(":")[2].split("/")[0]) for t in tries
    }
    assert len({t["attributes"]["server.port"] for t in tries}) == 2  # another target each time
    for attempt in tries:
        assert attempt["status"]["code"] == "ERROR"
        assert attempt["attributes"]["error.type"] == "connection_refused"
        connect = [s for s in trace.children(attempt) if s["name"] == "gateway.upstream.connect"]
        assert len(connect) == 1
        assert connect[0]["status"]["code"] == "ERROR"
    assert tries[0]["end_time_unix_nano"] <= tries[1]["start_time_unix_nano"]
    assert trace.root["status"]["code"] == "ERROR"
    assert trace.root["attributes"]["error.type"] == "connection_refused"


def test_upstream_404_and_redirect(catalogue: Catalogue) -> None:
    assert catalogue.send("GET", "/open/orders/99", "notfound-1").status_code == 404
    trace = catalogue.trace("catalogue", "notfound-1")
    assert trace.root["status"]["code"] == "UNSET"
    upstream = trace.one("gateway.upstream")
    assert upstream["status"]["code"] == "ERROR"  # a client span errors on 4xx
    assert upstream["attributes"]["error.type"] == "404"
    assert upstream["attributes"]["http.response.status_code"] == 404

    redirect = catalogue.send("GET", "/open/redirect", "redirect-1", follow_redirects=False)
    assert redirect.status_code == 302
    trace = catalogue.trace("catalogue", "redirect-1")
    assert trace.root["attributes"]["http.response.status_code"] == 302
    assert trace.one("gateway.upstream")["status"]["code"] == "UNSET"


def test_streaming_response(catalogue: Catalogue) -> None:
    chunks: list[bytes] = []
    with httpx.stream(
        "GET",
        catalogue.proxy + "/open/stream?chunks=4&interval_ms=30",
        headers={"x-request-id": "stream-1"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        chunks.extend(response.iter_raw())
    body = b"".join(chunks)
    assert body == b"".join(f"chunk {i}\n".encode() for i in range(4))
    trace = catalogue.trace("catalogue", "stream-1")
    trace.check_structure()
    read = trace.one("gateway.upstream.read_response")
    assert read["attributes"]["http.response.body.size"] == len(body)
    assert (read["end_time_unix_nano"] - read["start_time_unix_nano"]) / 1e6 >= 3 * 30 * 0.9
    write = trace.one("gateway.response.write")
    assert write["end_time_unix_nano"] >= read["end_time_unix_nano"]
    assert trace.root["attributes"]["http.response.body.size"] == len(body)


def test_incoming_traceparent_is_continued(catalogue: Catalogue) -> None:
    incoming = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = catalogue.send("GET", "/open/echo", "tp-1", headers={"traceparent": incoming})
    assert response.status_code == 200
    sent = dict(response.json()["headers"])
    trace = catalogue.trace("catalogue", "tp-1")
    root = trace.root
    assert root["trace_id"] == TRACE_ID
    assert root["parent_span_id"] == PARENT_ID
    upstream = trace.one("gateway.upstream")
    assert sent["traceparent"] == f"00-{TRACE_ID}-{upstream['span_id']}-01"


def test_invalid_traceparent_is_ignored(catalogue: Catalogue) -> None:
    bad = f"00-{'0' * 32}-{PARENT_ID}-01"  # an all-zero trace ID is invalid
    response = catalogue.send("GET", "/open/echo", "tp-2", headers={"traceparent": bad})
    sent = dict(response.json()["headers"])
    trace = catalogue.trace("catalogue", "tp-2")
    root = trace.root
    assert root["trace_id"] != "0" * 32
    assert root["parent_span_id"] is None
    upstream = trace.one("gateway.upstream")
    assert sent["traceparent"] == f"00-{root['trace_id']}-{upstream['span_id']}-01"


def test_capture_with_redaction(catalogue: Catalogue) -> None:
    body = "x" * (BODY_MAX + 10)
    response = catalogue.send(
        "POST",
        "/secure/echo?apikey=alice-key",
        "capture-1",
        headers={
            "authorization": "Basic c2VjcmV0",
            "cookie": "session=abc",
            "x-note": "<script>alert(1)</script>",
            "content-type": "text/plain",
        },
        content=body,
    )
    assert response.status_code == 200
    trace = catalogue.trace("catalogue", "capture-1")
    attributes = trace.root["attributes"]
    assert attributes["http.request.header.authorization"] == ["[REDACTED]"]
    assert attributes["http.request.header.cookie"] == ["[REDACTED]"]
    assert attributes["http.request.header.x-note"] == ["<script>alert(1)</script>"]
    assert attributes["http.response.header.content-type"] == ["application/json"]
    # The echo upstream puts the query it got into its body; everything the gateway wrote
    # itself hides the key.
    assert "alice-key" not in str({k: v for k, v in attributes.items() if "response.body" not in k})
    assert attributes["url.query"] == "apikey=[REDACTED]"
    upstream = trace.one("gateway.upstream")
    assert upstream["attributes"]["url.full"].endswith("/demo/echo?apikey=[REDACTED]")
    assert attributes["gateway.request.body"] == "x" * BODY_MAX
    assert attributes["gateway.request.body.truncated"] is True
    assert len(attributes["gateway.response.body"].encode()) <= BODY_MAX
    assert attributes["gateway.response.body.truncated"] is True


FIDELITY_ROUNDS = 3
"""Rounds of 200 requests the fidelity test may take: the first that meets every bound passes."""


def test_trace_fidelity(catalogue: Catalogue) -> None:
    """Root span durations match what a raw-socket client measured; phases cover the root.

    Client, node, upstream and control plane share 2 vCPUs, and a minute in which the VM's host
    takes them away for milliseconds at a time (seen: 59 of 200 requests off by ~1 ms, both
    ways, all of them ~5 ms slower than usual) says nothing about the spans. So the test takes
    up to three rounds of 200 requests and passes on the first that meets every bound: a node
    whose spans do not match its requests fails all three.
    """
    failures: list[str] = []
    for attempt in range(FIDELITY_ROUNDS):
        failure = _fidelity_round(catalogue, attempt)
        if failure is None:
            return
        failures.append(failure)
    raise AssertionError("\n".join(failures))


def _fidelity_round(catalogue: Catalogue, attempt: int) -> str | None:
    """200 sequential requests and their traces: None when they meet every bound, else why not."""
    port = int(catalogue.proxy.rsplit(":", 1)[1])
    measured: dict[str, float] = {}
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(200):
            request_id = f"fidelity-{attempt}-{index}"
            request = (
                f"GET /open/slow?ms=20 HTTP/1.1\r\nhost: gw\r\nx-request-id: {request_id}\r\n\r\n"
            ).encode()
            started = time.perf_counter_ns()
            conn.sendall(request)
            _read_response(conn)
            measured[request_id] = (time.perf_counter_ns() - started) / 1e6
    session_id = catalogue.sessions["catalogue"]
    roots: dict[str, dict[str, Any]] = {}

    def stored() -> list[dict[str, Any]]:
        page = catalogue.stack.ok(
            "GET",
            f"/api/v1/tracing-sessions/{session_id}/traces",
            params={"path": "/open/slow", "limit": 1000},
        )
        items: list[dict[str, Any]] = page["items"]
        return items

    wait_for(lambda: len(stored()) >= 200 * (attempt + 1), "200 fidelity traces")
    outliers = []
    coverage: list[tuple[int, int]] = []
    for row in stored():
        trace = Trace(catalogue.stack.ok("GET", f"/api/v1/traces/{row['trace_id']}")["spans"])
        root = trace.root
        request_id = root["attributes"]["gateway.request.id"]
        if request_id not in measured:  # an earlier round's
            continue
        roots[request_id] = root
        server_ms = (root["end_time_unix_nano"] - root["start_time_unix_nano"]) / 1e6
        client_ms = measured[request_id]
        if abs(client_ms - server_ms) > max(0.02 * client_ms, 0.2):
            outliers.append((request_id, client_ms, server_ms))
        covered = _union_ns(
            [(c["start_time_unix_nano"], c["end_time_unix_nano"]) for c in trace.children(root)]
        )
        root_ns = root["end_time_unix_nano"] - root["start_time_unix_nano"]
        coverage.append((covered, root_ns))
    assert sorted(roots) == sorted(measured)  # every request has its trace: no retry for that
    # A process descheduled between the client's last byte and the node's final bookkeeping
    # shows as an outlier of up to ~1 ms. The typical request must be within the bound, and
    # nearly all of them.
    differences = sorted(
        abs(measured[r] - (root["end_time_unix_nano"] - root["start_time_unix_nano"]) / 1e6)
        for r, root in roots.items()
    )
    # Phase spans account for the root's time: in total, and for nearly every request (a
    # descheduled node leaves a gap between two phases).
    checks = {
        f"median difference {differences[len(differences) // 2]:.3f} ms > 0.2": (
            differences[len(differences) // 2] <= 0.2
        ),
        f"{len(outliers)} outliers > 20: {outliers[:5]}": len(outliers) <= 20,
        "phases cover < 95 % of the roots' time": (
            sum(c for c, _ in coverage) >= 0.95 * sum(r for _, r in coverage)
        ),
        "< 90 % of requests covered 95 % by phases": (
            sum(c >= 0.95 * r for c, r in coverage) >= 0.9 * len(coverage)
        ),
    }
    failed = [what for what, ok in checks.items() if not ok]
    return f"round {attempt + 1}: " + "; ".join(failed) if failed else None


def _union_ns(intervals: list[tuple[int, int]]) -> int:
    total = 0
    end = -1
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "connection closed"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed"
        rest += chunk
    return rest


def test_body_filter_plugins(catalogue: Catalogue) -> None:
    response = catalogue.send("GET", "/filtered/hello", "filter-1")
    assert response.json() == {"message": "hello from the demo upstream", "gateway": "activetrace"}
    trace = catalogue.trace("catalogue", "filter-1")
    trace.check_structure()
    phase = trace.one("gateway.body_filter")
    plugin = trace.one("gateway.body_filter.plugin.response-transformer")
    assert plugin["parent_span_id"] == phase["span_id"]
    assert plugin["attributes"]["gateway.plugin.name"] == "response-transformer"
    assert plugin["attributes"]["gateway.body_filter.chunks"] >= 1
    header = trace.one("gateway.header_filter.plugin.response-transformer")
    assert header["parent_span_id"] == trace.one("gateway.header_filter")["span_id"]


def test_client_going_away_mid_body_is_an_error(catalogue: Catalogue) -> None:
    port = int(catalogue.proxy.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(
            b"POST /open/echo HTTP/1.1\r\nhost: gw\r\nx-request-id: abort-1\r\n"
            b"content-length: 100\r\n\r\n0123456789"
        )
    trace = catalogue.trace("catalogue", "abort-1")
    trace.check_structure()
    root = trace.root
    assert root["status"]["code"] == "ERROR"
    assert root["attributes"]["error.type"] == "client_disconnected"
    assert "gateway.upstream" not in trace.names()
