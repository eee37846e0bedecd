"""``activetrace up``: the whole system on one machine, for the quick start."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from controlplane.demo.config import demo_config
from controlplane.launcher import (
    ProcessFailed,
    Supervised,
    control_plane_args,
    http_json,
    node_args,
    start,
    stop_all,
    wait_until,
)

__all__ = ["run_local_stack"]


def _cli(*args: str) -> list[str]:
    return ["controlplane.cli", *args]


def run_local_stack(
    *,
    base_dir: Path,
    api_port: int,
    cluster_port: int,
    otlp_grpc_port: int,
    dp_ports: list[int],
    upstream_port: int,
) -> int:
    """Start CP + nodes + demo upstream, apply the demo config, wait for Ctrl-C."""
    base_dir.mkdir(parents=True, exist_ok=True)
    api = f"http://127.0.0.1:{api_port}"
    env = {"ACTIVETRACE_LOG_FORMAT": "text"}
    processes: list[Supervised] = []
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        processes.append(
            start(
                "demo-upstream",
                _cli(
                    "demo-upstream",
                    "--port",
                    str(upstream_port),
                    "--otlp-endpoint",
                    f"http://127.0.0.1:{otlp_grpc_port}",
                ),
                env=env,
            )
        )
        processes.append(
            start(
                "controlplane",
                control_plane_args(
                    database_url=f"sqlite+aiosqlite:///{base_dir / 'activetrace.db'}",
                    api_port=api_port,
                    cluster_port=cluster_port,
                    otlp_grpc_port=otlp_grpc_port,
                ),
                env=env,
            )
        )
        wait_until(
            lambda: http_json("GET", f"{api}/healthz")[0] == 200,
            what="the control plane",
            processes=processes,
        )
        status, body = http_json(
            "PUT", f"{api}/api/v1/config", demo_config(f"http://127.0.0.1:{upstream_port}")
        )
        if status != 200:
            raise ProcessFailed(f"applying the demo config failed: {status} {body}")
        node_ids = [f"dp-{i}" for i in range(1, len(dp_ports) + 1)]
        for index, (node_id, port) in enumerate(zip(node_ids, dp_ports, strict=True)):
            processes.append(
                start(
                    node_id,
                    node_args(
                        node_id=node_id,
                        cluster_port=cluster_port,
                        proxy_port=port,
                        status_port=8100 + 10 * index,
                        cache_dir=base_dir / "dataplane",
                    ),
                    env=env,
                )
            )

        def all_connected() -> bool:
            status, nodes = http_json("GET", f"{api}/api/v1/nodes?status=connected")
            return status == 200 and {n["id"] for n in nodes} >= set(node_ids)

        wait_until(all_connected, what="the data plane nodes to connect", processes=processes)
        _print_banner(api, node_ids, dp_ports, upstream_port)
        while not stop.wait(0.5):
            for process in processes:
                process.check()
        print("\nstopping...", file=sys.stderr)
        return 0
    except ProcessFailed as exc:
        print(f"activetrace up: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all(processes)


def _print_banner(api: str, node_ids: list[str], dp_ports: list[int], upstream_port: int) -> None:
    lines = [
        "",
        "activetrace is running:",
        f"  viewer + API     {api}/  (OpenAPI docs: {api}/docs)",
        *(
            f"  {n:<16} http://127.0.0.1:{p}/demo/hello"
            for n, p in zip(node_ids, dp_ports, strict=True)
        ),
        f"  demo upstream    http://127.0.0.1:{upstream_port}/demo/hello",
        "",
        "Try:",
        f"  curl {api}/api/v1/nodes",
        f"  curl http://127.0.0.1:{dp_ports[0]}/demo/orders",
        "",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
