"""Shared pieces of the gateway benchmarks: nginx, wrk, a control plane and one node.

Everything runs on this machine side by side in one run, so the ratios compare like with like.
The tools come from Debian's packages (``nginx-light``, ``wrk``), installed on first use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from controlplane import launcher
from controlplane.launcher import Supervised, free_port, start, stop_all, wait_until

__all__ = [
    "Gateway",
    "WrkResult",
    "ensure_tools",
    "free_port",
    "gateway",
    "isolate",
    "nginx",
    "print_table",
    "wrk",
]


def ensure_tools(extra: Sequence[tuple[str, str]] = ()) -> None:
    """Install Debian's nginx and wrk (and ``extra`` (package, binary) pairs) when missing."""
    wanted = (("nginx-light", "nginx"), ("wrk", "wrk"), *extra)
    missing = [package for package, binary in wanted if not _which(binary)]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def _which(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body-{name};
    proxy_temp_path {dir}/proxy-{name};
    fastcgi_temp_path {dir}/fastcgi-{name};
    uwsgi_temp_path {dir}/uwsgi-{name};
    scgi_temp_path {dir}/scgi-{name};
    keepalive_requests 1000000;
    {body}
}}
"""

UPSTREAM_SERVER = """
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"message":"hello from the upstream"}}';
        }}
    }}
"""

PROXY_SERVER = """
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
"""


@contextmanager
def nginx(name: str, body: str, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One nginx master with one worker running ``body`` inside ``http {}``."""
    conf = workdir / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, name=name, body=body))
    binary = _which("nginx")
    assert binary is not None, "nginx is not installed"
    process = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / f"{name}.err")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class WrkResult:
    """What wrk measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:  # wrk prints -nan when nothing completed
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 32,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    """Run wrk (one thread) against ``url`` and parse its summary (``script``: a wrk Lua
    script, e.g. one that spreads the requests over paths: :func:`paths_script`)."""
    binary = _which("wrk")
    assert binary is not None, "wrk is not installed"
    args = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for key, value in (headers or {}).items():
        args += ["-H", f"{key}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Requests/sec" not in output or "99%" not in output:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    # the percentile lines of --latency; "85.50%" in the thread stats must not match "50%"
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    for match in re.finditer(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", output):
        if match.group(1):
            errors += int(match.group(1))
        else:
            errors += sum(int(n) for n in re.findall(r"\d+", match.group(2)))
    return WrkResult(rps, p50, p99, errors)


def paths_script(paths: Sequence[str], workdir: Path) -> Path:
    """A wrk Lua script that sends GETs to ``paths`` in turn (requests built once, up front)."""
    script = workdir / "paths.lua"
    listed = ", ".join(f'"{path}"' for path in paths)
    script.write_text(
        f"local paths = {{{listed}}}\n"
        "local requests = {}\n"
        "for i, path in ipairs(paths) do requests[i] = wrk.format(nil, path) end\n"
        "local next_one = 0\n"
        "request = function()\n"
        "  next_one = next_one % #requests + 1\n"
        "  return requests[next_one]\n"
        "end\n"
    )
    return script


BENCH_ENV: Final = {"ACTIVETRACE_LOG_LEVEL": "warning", "ACTIVETRACE_HEARTBEAT_INTERVAL_SECS": "1"}


def control_plane_args(
    workdir: Path, api_port: int, cluster_port: int, otlp_port: int
) -> list[str]:
    """``python -m`` arguments of a bench control plane on SQLite in ``workdir``, on loopback."""
    return launcher.control_plane_args(
        database_url=f"sqlite+aiosqlite:///{workdir / 'cp.db'}",
        api_port=api_port,
        cluster_port=cluster_port,
        otlp_grpc_port=otlp_port,
        host="127.0.0.1",
    )


def node_args(
    node_id: str, cluster_port: int, proxy_port: int, status_port: int, cache_dir: Path
) -> list[str]:
    """``python -m`` arguments of a bench data plane node, on loopback."""
    return launcher.node_args(
        node_id=node_id,
        cluster_port=cluster_port,
        proxy_port=proxy_port,
        status_port=status_port,
        cache_dir=cache_dir,
        proxy_host="127.0.0.1",
    )


def api_call(api: str, method: str, path: str, *, timeout: float = 10, **kwargs: Any) -> Any:
    """A control plane API call that must succeed; its JSON answer (None when empty)."""
    response = httpx.request(method, api + path, timeout=timeout, **kwargs)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


@dataclass
class Gateway:
    """A control plane (SQLite) and one data plane node, driven over the admin API."""

    api: str
    proxy: str
    processes: list[Supervised]
    status: str = ""
    """The node's status listener (``/status``, ``/metrics``)."""
    relay_pid: int | None = None
    """The :mod:`bench.relay` process between the node and the control plane, if any."""

    @property
    def control_plane_pid(self) -> int:
        """The control plane's process (started first)."""
        return self.processes[0].popen.pid

    @property
    def node_pid(self) -> int:
        """The node's process (started last)."""
        return self.processes[-1].popen.pid

    def traced_requests(self) -> int:
        """The node's count of requests a session kept."""
        return self._status("traced")

    def spans_queued(self) -> int:
        """Spans the node has not had acknowledged by its control plane yet."""
        return self._status("spans_queued")

    def spans_dropped(self) -> int:
        """Spans the node's bounded export buffer has dropped."""
        return self._status("spans_dropped")

    def _status(self, field: str) -> int:
        """A counter from the node's ``/status`` (cheaper for it to serve than ``/metrics``:
        the tracing benchmark polls it while measuring the node's CPU)."""
        value = httpx.get(self.status + "/status", timeout=10).json()[field]
        assert isinstance(value, int), f"the node's /status has no integer {field}"
        return value

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return api_call(self.api, method, path, **kwargs)

    def apply(self, config: dict[str, Any]) -> None:
        """Replace the config and wait until the node serves it."""
        version = self.call("PUT", "/api/v1/config", json=config)["version"]
        wait_until(
            lambda: any(n["config_version"] == version for n in self.call("GET", "/api/v1/nodes")),
            what="the node to apply the config",
            processes=self.processes,
        )

    def session(self, body: dict[str, Any]) -> str:
        """Start a session on the node and wait until it is active there."""
        session_id: str = self.call(
            "POST", "/api/v1/tracing-sessions", json={"targets": ["bench"], **body}
        )["id"]
        wait_until(
            lambda: (
                self.call("GET", f"/api/v1/tracing-sessions/{session_id}")["targets"][0]["state"]
                == "active"
            ),
            what="the session to be active",
            processes=self.processes,
        )
        return session_id

    def stop_sessions(self) -> None:
        for session in self.call("GET", "/api/v1/tracing-sessions")["items"]:
            if session["status"] in ("pending", "active"):
                self.call("POST", f"/api/v1/tracing-sessions/{session['id']}/stop")
        wait_until(
            lambda: not self.call("GET", "/api/v1/nodes")[0]["active_sessions"],
            what="sessions to stop on the node",
            processes=self.processes,
        )


@contextmanager
def gateway(
    workdir: Path, *, node_env: dict[str, str] | None = None, relay: bool = False
) -> Iterator[Gateway]:
    """Start a control plane and a node called ``bench`` (one process each, uvloop); with
    ``relay``, the node connects through :mod:`bench.relay`, which acknowledges its span
    batches itself and passes everything else on (``Gateway.relay_pid``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    api_port, cluster_port, otlp_port, proxy_port, status_port = (free_port() for _ in range(5))
    env = BENCH_ENV
    processes = [
        start(
            "controlplane",
            control_plane_args(workdir, api_port, cluster_port, otlp_port),
            env=env,
            log=workdir / "controlplane.log",
        )
    ]
    bench = Gateway(
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{proxy_port}",
        processes,
        f"http://127.0.0.1:{status_port}",
    )
    try:
        wait_until(
            lambda: httpx.get(bench.api + "/healthz", timeout=1).status_code == 200,
            what="the control plane",
            processes=processes,
        )
        node_cluster_port = cluster_port
        if relay:
            node_cluster_port = free_port()
            relay_args = ["bench.relay", "--listen", str(node_cluster_port)]
            relay_args += ["--control-plane", f"127.0.0.1:{cluster_port}"]
            processes.append(start("relay", relay_args, log=workdir / "relay.log"))
            bench.relay_pid = processes[-1].popen.pid
        processes.append(
            start(
                "bench",
                node_args("bench", node_cluster_port, proxy_port, status_port, workdir / "cache"),
                env={**env, **(node_env or {})},
                log=workdir / "bench-node.log",
            )
        )
        wait_until(
            lambda: any(n["status"] == "connected" for n in bench.call("GET", "/api/v1/nodes")),
            what="the node to connect",
            processes=processes,
        )
        yield bench
    finally:
        stop_all(processes)


def service_config(
    upstream_port: int, plugins: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One service in front of the upstream with one route ``/``."""
    return {
        "_format_version": "1.0",
        "services": [
            {
                "name": "bench",
                "url": f"http://127.0.0.1:{upstream_port}",
                "routes": [{"name": "bench", "paths": ["/"], "plugins": plugins or []}],
            }
        ],
    }


def print_table(title: str, rows: list[tuple[str, WrkResult]], baseline: str) -> None:
    """Print results with ratios to ``baseline``."""
    base = dict(rows)[baseline]
    print(f"\n{title}")
    print(f"{'':34} {'RPS':>9} {'p50 ms':>8} {'p99 ms':>8} {'RPS ratio':>10} {'p99 ratio':>10}")
    for name, result in rows:
        print(
            f"{name:34} {result.rps:9.0f} {result.p50_ms:8.2f} {result.p99_ms:8.2f} "
            f"{result.rps / base.rps:10.2f} {result.p99_ms / base.p99_ms:10.2f}"
            + (f"  ({result.errors} errors)" if result.errors else "")
        )


def _tree(pid: int) -> list[int]:
    """``pid``'s threads and those of its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    threads: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            threads += [int(t) for t in os.listdir(f"/proc/{current}/task")]
        todo += children.get(current, [])
    return threads


def isolate(
    measured: Sequence[int],
    others: Sequence[int],
    *,
    nice: Sequence[int] = (),
    what: str = "node",
) -> str:
    """Give the ``measured`` processes the last CPU to themselves and move ``others`` (and this
    process, so the wrk it starts) to the remaining ones; ``nice`` processes get a lower
    priority there. Returns a description for the report ("" with fewer than two CPUs).

    In production the control plane runs on its own host; on this two-core machine it would
    otherwise take CPU from the node being measured, and wrk would compete with it too.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return ""
    mine, rest = {cpus[-1]}, set(cpus[:-1])
    for pids, mask in ((measured, mine), (others, rest)):
        for pid in pids:
            for thread in _tree(pid):
                with contextlib.suppress(OSError):  # a thread that just exited
                    os.sched_setaffinity(thread, mask)
    for pid in nice:
        for thread in _tree(pid):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, thread, 10)
    os.sched_setaffinity(0, rest)
    return f"{what} on CPU {cpus[-1]}; wrk, upstream and control plane on CPU {min(rest)}" + (
        f"-{max(rest)}" if len(rest) > 1 else ""
    )


def cpu_seconds(pid: int) -> tuple[float, float]:
    """A process's user and system CPU seconds so far (Linux ``/proc``).

    Their sum is the scheduler's nanosecond run time of the process's threads
    (``/proc/<pid>/task/*/schedstat``; a thread that exited takes its time with it, and a node's
    threads live as long as it does): ``/proc/<pid>/stat`` gives it in 10 ms units, ±1 µs per
    traced request over the tracing benchmark's one-second runs. It is split into user and
    system time as ``stat``'s utime and stime are, which the kernel samples at its ticks.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    total = _run_seconds(pid)
    system = total * stime / (utime + stime) if utime + stime else 0.0
    return total - system, system


def page_faults(pid: int) -> int:
    """A process's page faults so far, minor and major (``/proc/<pid>/stat``): each new page
    the process touches costs one, which on a VM (two levels of page tables) is a few µs of
    system time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7]) + int(fields[9])


def other_threads_seconds(pid: int) -> float:
    """The CPU seconds so far of a process's threads other than its main one (a node's: gRPC's
    threads, which send its span batches; uvloop's DNS workers), counted as
    :func:`cpu_seconds` counts them."""
    return _run_seconds(pid, but_main=True)


def _run_seconds(pid: int, *, but_main: bool = False) -> float:
    """The scheduler's run time so far of a process's threads (``/proc/<pid>/task/*/schedstat``,
    nanoseconds), without its main thread's if ``but_main``."""
    nanoseconds = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if but_main and task.name == str(pid):
            continue
        with contextlib.suppress(OSError):  # a thread that just exited
            nanoseconds += int((task / "schedstat").read_text().split()[0])
    return nanoseconds / 1e9


def temporary_dir() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory for configs, logs and the bench database."""
    return tempfile.TemporaryDirectory(prefix="activetrace-bench-")


def settle(seconds: float = 0.5) -> None:
    """Let sockets from the previous run drain before the next measurement."""
    time.sleep(seconds)
