"""Starting and stopping activetrace processes (``activetrace up`` and the integration tests)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = [
    "ProcessFailed",
    "Supervised",
    "control_plane_args",
    "free_port",
    "http_json",
    "node_args",
    "start",
    "stop_all",
    "wait_until",
]


def control_plane_args(
    *,
    database_url: str,
    api_port: int,
    cluster_port: int,
    otlp_grpc_port: int,
    host: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m`` arguments of ``activetrace controlplane`` (for :func:`start`); ``host``
    None keeps the CLI's default listen address."""
    return [
        "controlplane.cli",
        "controlplane",
        "--database-url",
        database_url,
        "--api-port",
        str(api_port),
        "--cluster-port",
        str(cluster_port),
        "--otlp-grpc-port",
        str(otlp_grpc_port),
        *(("--host", host) if host is not None else ()),
        *extra,
    ]


def node_args(
    *,
    node_id: str,
    cluster_port: int,
    proxy_port: int,
    status_port: int,
    cache_dir: Path,
    proxy_host: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m`` arguments of ``activetrace dataplane`` connecting to a control plane on
    this host (for :func:`start`); ``proxy_host`` None keeps the CLI's default."""
    return [
        "controlplane.cli",
        "dataplane",
        "--node-id",
        node_id,
        "--control-plane",
        f"127.0.0.1:{cluster_port}",
        *(("--proxy-host", proxy_host) if proxy_host is not None else ()),
        "--proxy-port",
        str(proxy_port),
        "--status-port",
        str(status_port),
        "--cache-dir",
        str(cache_dir),
        *extra,
    ]


class ProcessFailed(RuntimeError):
    """A supervised process exited or never became ready."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the OS picks it), never one this
    process handed out before: callers often pick several ports before the processes that
    use them bind any, and the OS may offer a port again once its probe socket is closed."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@dataclass
class Supervised:
    """One child process."""

    name: str
    popen: subprocess.Popen[bytes]
    args: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise if the process has exited."""
        code = self.popen.poll()
        if code is not None:
            raise ProcessFailed(f"{self.name} exited with code {code}")


def start(
    name: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: str | None = None,
) -> Supervised:
    """Start ``python -m <module> args`` in its own process group; output appends to ``log``."""
    command = [sys.executable, "-m", *args]
    with contextlib.ExitStack() as files:
        output: IO[Any] | None = files.enter_context(log.open("ab")) if log is not None else None
        popen = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return Supervised(name, popen, command)


def stop_all(processes: Sequence[Supervised], timeout: float = 10.0) -> None:
    """SIGTERM every process, wait, then SIGKILL what is left."""
    for process in reversed(processes):
        if process.popen.poll() is None:
            process.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in reversed(processes):
        remaining = max(0.1, deadline - time.monotonic())
        try:
            process.popen.wait(remaining)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()


def http_json(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """A small HTTP client for readiness checks and set-up (no dependency on the servers)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")


def wait_until(
    condition: Callable[[], bool],
    *,
    what: str,
    timeout: float = 30.0,
    processes: Sequence[Supervised] = (),
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` until it holds; fail early if a supervised process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            process.check()
        try:
            if condition():
                return
        except (OSError, urllib.error.URLError, ValueError, httpx.TransportError):
            pass
        time.sleep(interval)
    raise ProcessFailed(f"timed out after {timeout:.0f}s waiting for {what}")
