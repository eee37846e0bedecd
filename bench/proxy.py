"""Proxy throughput: nginx ``proxy_pass`` and an activetrace node in front of the same upstream.

Each proxy runs one worker process; the upstream is a separate one-worker nginx returning a
small JSON body; wrk (one thread, 32 connections) drives each in turn, in one run. Goals (issue
5): node RPS >= 0.30x nginx without plugins and >= 0.25x with key-auth + rate-limiting (local) +
correlation-id; node p99 <= 3x nginx's.

nginx, the node and the node with plugins run in interleaved rounds (3 by default; the best
round of each is kept, and each round's ratios are printed too). The proxies measured (nginx's
proxy worker and the node) get the last CPU to themselves, one at a time as wrk drives them;
wrk, the upstream and the control plane (niced) share the others, so the proxy under test does
not queue behind its own load generator (``--shared-cpus`` turns this off, as earlier runs
measured).

Run: ``.venv/bin/python -m bench.proxy [--seconds 8] [--rounds 3]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.gateway import (
    PROXY_SERVER,
    UPSTREAM_SERVER,
    WrkResult,
    ensure_tools,
    free_port,
    gateway,
    isolate,
    nginx,
    print_table,
    service_config,
    settle,
    temporary_dir,
    wrk,
)

PLUGINS = [
    {"name": "key-auth", "config": {"key_names": ["apikey"]}},
    {"name": "rate-limiting", "config": {"second": 1_000_000, "policy": "local"}},
    {"name": "correlation-id", "config": {"header_name": "x-correlation-id"}},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk duration per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of nginx, the node and the node with plugins (best kept)",
    )
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="let every process use every CPU (wrk then competes with the proxy it measures)",
    )
    args = parser.parse_args()
    ensure_tools()
    runs: dict[str, list[WrkResult]] = {}
    with temporary_dir() as tmp:
        workdir = Path(tmp)
        upstream_port, nginx_port = free_port(), free_port()
        with (
            nginx("upstream", UPSTREAM_SERVER.format(port=upstream_port), workdir) as upstream,
            nginx(
                "proxy",
                PROXY_SERVER.format(port=nginx_port, upstream=upstream_port),
                workdir,
            ) as proxy,
            gateway(workdir) as gw,
        ):
            direct = f"http://127.0.0.1:{upstream_port}/"
            wrk(direct, seconds=1)  # warm up
            nginx_url = f"http://127.0.0.1:{nginx_port}/"
            wrk(nginx_url, seconds=1)  # its worker is up (and warm)
            layout = "every process on every CPU"
            if not args.shared_cpus:
                control_plane = gw.control_plane_pid
                layout = (
                    isolate(
                        [proxy.pid, gw.node_pid],
                        [upstream.pid, control_plane],
                        nice=[control_plane],
                        what="nginx proxy and node",
                    )
                    or layout
                )
            runs["upstream direct"] = [
                wrk(direct, seconds=args.seconds, connections=args.connections)
            ]
            settle()
            plain = service_config(upstream_port)
            plugins = service_config(upstream_port, PLUGINS)
            plugins["consumers"] = [{"username": "bench", "keyauth_credentials": [{"key": "k"}]}]
            for _ in range(args.rounds):
                # Interleaved, so that a slower minute of this VM weighs on every row alike.
                wrk(nginx_url, seconds=1)
                runs.setdefault("nginx proxy_pass", []).append(
                    wrk(nginx_url, seconds=args.seconds, connections=args.connections)
                )
                settle()
                for name, config, headers in (
                    ("activetrace, no plugins", plain, None),
                    ("activetrace, 3 plugins", plugins, {"apikey": "k"}),
                ):
                    gw.apply(config)
                    wrk(gw.proxy + "/", seconds=2, headers=headers)
                    runs.setdefault(name, []).append(
                        wrk(
                            gw.proxy + "/",
                            seconds=args.seconds,
                            connections=args.connections,
                            headers=headers,
                        )
                    )
                    settle()
    best = [(name, max(results, key=lambda r: r.rps)) for name, results in runs.items()]
    print_table(
        f"Proxy throughput, wrk -t1 -c{args.connections}, {args.seconds:.0f}s per run, best of "
        f"{args.rounds} interleaved rounds; " + layout,
        best,
        baseline="nginx proxy_pass",
    )
    base = runs["nginx proxy_pass"]
    print("\nEach round against that round's nginx (RPS ratio / p99 ratio):")
    for name in ("activetrace, no plugins", "activetrace, 3 plugins"):
        ratios = [
            f"{run.rps / ref.rps:.2f}x / {run.p99_ms / ref.p99_ms:.2f}x"
            for run, ref in zip(runs[name], base, strict=True)
        ]
        print(f"  {name:32} " + ",  ".join(ratios))


if __name__ == "__main__":
    main()
