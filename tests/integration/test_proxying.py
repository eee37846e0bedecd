"""What a node does to the requests it proxies, over real processes: forwarding headers,
hop-by-hop headers, request IDs, Host, path rewriting, streamed bodies, weighted balancing with
passive health checks and retries."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, sqlite_url
from tests.integration.conftest import NodeProcess, Stack, launch_stack, running


class Named(ThreadingHTTPServer):
    """A target that answers its own name."""

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _NamedHandler)
        self.name = name

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _NamedHandler(BaseHTTPRequestHandler):
    server: Named
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def targets() -> Iterator[tuple[Named, Named]]:
    servers = (Named("a"), Named("b"))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    targets: tuple[Named, Named],
) -> Iterator[tuple[Stack, NodeProcess]]:
    workdir: Path = tmp_path_factory.mktemp("proxying")
    a, b = targets
    dead = f"127.0.0.1:{free_port()}"
    with running(launch_stack(sqlite_url(workdir), workdir), request) as s:
        s.ok(
            "PUT",
            "/api/v1/config",
            json={
                "_format_version": "1.0",
                "upstreams": [
                    {
                        "name": "pool.internal",
                        "targets": [
                            {"target": a.target, "weight": 300},
                            {"target": b.target, "weight": 100},
                            {"target": dead, "weight": 100},
                        ],
                    }
                ],
                "services": [
                    {
                        "name": "echo",
                        "url": f"{s.upstream}/demo/echo",
                        "routes": [
                            {"name": "echo", "paths": ["/echo"]},
                            {"name": "kept", "paths": ["/kept"], "preserve_host": True},
                        ],
                    },
                    {
                        "name": "pool",
                        "host": "pool.internal",
                        "retries": 2,
                        "routes": [{"name": "pool", "paths": ["/pool"]}],
                    },
                ],
            },
        )
        dp = s.start_node("dp-1")
        s.wait_connected("dp-1")
        yield s, dp


def _echo(dp: NodeProcess, path: str, **kwargs: Any) -> tuple[httpx.Response, dict[str, str]]:
    response = httpx.request(kwargs.pop("method", "GET"), dp.proxy + path, timeout=10, **kwargs)
    assert response.status_code == 200, response.text
    return response, {k: v for k, v in response.json()["headers"]}


def test_forwarding_headers_and_request_id(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    port = dp.proxy.rsplit(":", 1)[1]
    response, sent = _echo(
        dp,
        "/echo?b=1",
        headers={"host": f"shop.example:{port}", "x-forwarded-for": "203.0.113.9"},
    )
    assert response.json()["path"] == "/demo/echo"  # /echo stripped, the service's path added
    assert response.json()["query"] == "b=1"
    assert sent["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == "shop.example"
    assert sent["x-forwarded-port"] == port
    assert sent["x-real-ip"] == "127.0.0.1"
    assert "1.1 activetrace" in sent["via"]
    assert len(sent["x-request-id"]) == 32
    assert sent["host"] == node[0].upstream.removeprefix("http://")
    assert "activetrace" in response.headers["via"]

    _, given = _echo(dp, "/echo", headers={"x-request-id": "mine-123"})
    assert given["x-request-id"] == "mine-123"


def test_clients_cannot_spoof_the_gateways_headers(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    response = httpx.get(
        dp.proxy + "/echo",
        headers=[
            ("x-real-ip", "1.2.3.4"),
            ("proxy-authorization", "Basic cHJveHk6c2VjcmV0"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("connection", "x-a"),
            ("connection", "x-b"),
            ("x-a", "1"),
            ("x-b", "2"),
        ],
        timeout=10,
    )
    assert response.status_code == 200, response.text
    pairs = [(k, v) for k, v in response.json()["headers"]]
    names = [k for k, _ in pairs]
    assert [v for k, v in pairs if k == "x-real-ip"] == ["127.0.0.1"]  # only the gateway's
    assert "proxy-authorization" not in names  # credentials for this proxy stop here
    assert [v for k, v in pairs if k == "x-forwarded-for"] == ["10.0.0.1, 10.0.0.2, 127.0.0.1"]
    assert "x-a" not in names  # listed by either Connection header: hop-by-hop
    assert "x-b" not in names


def test_hop_by_hop_headers_are_removed_and_traceparent_passes(
    node: tuple[Stack, NodeProcess],
) -> None:
    _, dp = node
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    _, sent = _echo(
        dp,
        "/echo",
        headers={
            "connection": "keep-alive, x-private",
            "x-private": "hop",
            "proxy-connection": "keep-alive",
            "te": "trailers",
            "keep-alive": "timeout=5",
            "traceparent": traceparent,
            "x-end-to-end": "kept",
        },
    )
    for name in ("x-private", "proxy-connection", "te", "keep-alive"):
        assert name not in sent, name
    assert sent["x-end-to-end"] == "kept"
    assert sent["traceparent"] == traceparent  # not traced: the client's context goes on


def test_preserve_host(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    _, sent = _echo(dp, "/kept", headers={"host": "shop.example"})
    assert sent["host"] == "shop.example"


def test_large_bodies_stream_both_ways(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    body = bytes(range(97, 123)) * 100_000  # 2.6 MB: over the buffering limit, streamed

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response, _ = _echo(dp, "/echo", method="POST", content=chunks())
    assert response.json()["body"].encode() == body


def test_weighted_balancing_skips_a_dead_target(
    node: tuple[Stack, NodeProcess], targets: tuple[Named, Named]
) -> None:
    _, dp = node
    # The dead target fails twice (each failed try is retried on another target, so clients see
    # no error), then passive health checks take it out of the rotation.
    seen = Counter(httpx.get(dp.proxy + "/pool", timeout=10).text for _ in range(40))
    assert sum(seen.values()) == 40
    assert set(seen) == {"a", "b"}
    later = Counter(httpx.get(dp.proxy + "/pool", timeout=10).text for _ in range(40))
    assert later == {"a": 30, "b": 10}  # 3:1, exactly, once only healthy targets remain
