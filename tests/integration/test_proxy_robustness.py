"""Bad input never crashes a node or leaks connections: malformed and oversized requests, slow
clients, upstreams that reset mid-response, clients that leave mid-request."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.demo.config import demo_config
from tests.conftest import free_port, sqlite_url
from tests.integration.conftest import NodeProcess, Stack, launch_stack, running, wait_for


class ResettingUpstream:
    """Answers with headers and half a body, then resets the connection (SO_LINGER 0)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 100)
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Stack, NodeProcess]]:
    workdir: Path = tmp_path_factory.mktemp("robust")
    resetting = ResettingUpstream()
    with running(launch_stack(sqlite_url(workdir), workdir), request) as s:
        config = demo_config(s.upstream)
        config["services"].append(
            {
                "name": "resetting",
                "url": f"http://127.0.0.1:{resetting.port}",
                "routes": [{"name": "resetting", "paths": ["/reset"]}],
            }
        )
        s.ok("PUT", "/api/v1/config", json=config)
        dp = s.start_node("dp-1")
        s.wait_connected("dp-1")
        wait_for(lambda: _routed(dp.proxy + "/reset"), "the resetting route")
        yield s, dp
    resetting.close()


def _routed(url: str) -> bool:
    with httpx.stream("GET", url, timeout=5) as response:
        return response.status_code != 404


def _port(dp: NodeProcess) -> int:
    return int(dp.proxy.rsplit(":", 1)[1])


def _healthy(dp: NodeProcess) -> None:
    response = httpx.get(dp.proxy + "/demo/hello", timeout=5)
    assert response.status_code == 200
    dp.process.check()


def _exchange(dp: NodeProcess, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", _port(dp)), timeout=10) as conn:
        conn.sendall(raw)
        data = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                break
        return data


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /demo/hello HTTP/1.1\r\nhost: a\r\ncontent-length: nope\r\n\r\n",
        b"GET /demo/hello HTTP/1.1\r\nbad header line\r\n\r\n",
        b"\x00\x01\x02\xff" * 100,
    ],
)
def test_malformed_requests_get_400_or_a_close(node: tuple[Stack, NodeProcess], raw: bytes) -> None:
    _, dp = node
    answer = _exchange(dp, raw)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    _healthy(dp)


def test_oversized_heads_get_431(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    huge = b"x" * (1 << 20)
    answer = _exchange(dp, b"GET /demo/hello HTTP/1.1\r\nhost: a\r\nx-big: " + huge + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert answer.endswith(b'{"message":"Request header fields too large"}')
    many = b"".join(b"x-h%d: %b\r\n" % (i, b"v" * 100) for i in range(1000))
    assert _exchange(dp, b"GET / HTTP/1.1\r\nhost: a\r\n" + many + b"\r\n").startswith(
        b"HTTP/1.1 431 "
    )
    # Under the limit is fine, and so is a large body after a small head.
    big_but_fine = httpx.get(dp.proxy + "/demo/hello", headers={"x-big": "y" * 30_000}, timeout=5)
    assert big_but_fine.status_code == 200
    upload = httpx.post(dp.proxy + "/demo/echo", content=b"z" * 200_000, timeout=5)
    assert upload.status_code == 200
    assert len(upload.json()["body"]) == 200_000
    _healthy(dp)


def test_slow_clients_do_not_block_others(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    slow = [socket.create_connection(("127.0.0.1", _port(dp))) for _ in range(50)]
    try:
        for conn in slow:
            conn.sendall(b"GET /demo/hello HTTP/1.1\r\nhost: a\r\nx-slow: ")  # never finished
        for _ in range(5):
            _healthy(dp)
    finally:
        for conn in slow:
            conn.close()


def test_upstream_reset_mid_response_is_survived(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    for _ in range(5):
        with pytest.raises(httpx.HTTPError):  # the response started: it can only be cut short
            httpx.get(dp.proxy + "/reset/x", timeout=5).read()
    _healthy(dp)


def test_aborted_requests_leak_no_connections(node: tuple[Stack, NodeProcess]) -> None:
    _, dp = node
    pid = dp.process.popen.pid

    def descriptors() -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    _healthy(dp)
    before = descriptors()
    for _ in range(100):  # a slow upstream answer that the client abandons
        with socket.create_connection(("127.0.0.1", _port(dp))) as conn:
            conn.sendall(b"GET /demo/slow?ms=200 HTTP/1.1\r\nhost: a\r\n\r\n")
    for _ in range(100):  # a body that never arrives
        with socket.create_connection(("127.0.0.1", _port(dp))) as conn:
            conn.sendall(b"POST /demo/echo HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nab")
    _healthy(dp)
    # Upstream connections of abandoned requests close once their response ends (≤ 200 ms).
    wait_for(lambda: descriptors() <= before + 10, f"descriptors back near {before}")
    assert free_port()  # the machine still has ports: nothing piled up in TIME_WAIT on our side


def test_a_stalled_request_body_is_timed_out(node: tuple[Stack, NodeProcess]) -> None:
    stack, _ = node
    dp = stack.start_node("dp-timeouts", env={"ACTIVETRACE_CLIENT_BODY_TIMEOUT_SECS": "1"})
    stack.wait_connected("dp-timeouts")
    wait_for(lambda: _routed(dp.proxy + "/demo/hello"), "the demo route on dp-timeouts")
    with socket.create_connection(("127.0.0.1", _port(dp)), timeout=15) as conn:
        conn.sendall(b"POST /demo/hello HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\nfour")
        answer = b""
        while chunk := conn.recv(65536):  # the node answers within ~2 s, then closes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request body" in answer
    _healthy(dp)
