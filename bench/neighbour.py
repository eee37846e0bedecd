"""How much a busy other CPU slows the node: a diagnostic for this benchmark's VMs.

The benchmarks give the node the last CPU and put wrk, the upstream and the control plane on
the others. On some VMs two vCPUs share a physical core (or a boost clock), so work on the
other vCPU slows the node even though it never runs on the node's: the tracing benchmark
pauses its control plane during measured runs for that reason (docs/benchmarks.md, "What
tracing costs"). This runs one untraced node, alternately with the other CPUs idle and with a
busy loop on them at the lowest priority (``SCHED_IDLE``: it yields to wrk and the upstream at
once), and prints the node's CPU per request, side by side.

Run: ``.venv/bin/python -m bench.neighbour [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.gateway import (
    UPSTREAM_SERVER,
    cpu_seconds,
    ensure_tools,
    free_port,
    gateway,
    isolate,
    nginx,
    service_config,
    settle,
    temporary_dir,
    wrk,
)

BUSY_LOOP = (
    "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True:\n    pass\n"
)


def _cpu_per_request(pid: int, url: str, seconds: int) -> tuple[float, float]:
    """(node CPU µs per request, RPS) over one wrk run."""
    before = sum(cpu_seconds(pid))
    result = wrk(url, seconds=seconds)
    return (sum(cpu_seconds(pid)) - before) / (result.rps * seconds) * 1e6, result.rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3, help="wrk duration per run")
    args = parser.parse_args()
    ensure_tools()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("needs two CPUs or more")
    idle: list[float] = []
    busy: list[float] = []
    with temporary_dir() as tmp:
        workdir = Path(tmp)
        upstream = free_port()
        with (
            nginx("upstream", UPSTREAM_SERVER.format(port=upstream), workdir) as upstream_nginx,
            gateway(workdir / "node") as node,
        ):
            pid = node.node_pid
            isolate([pid], [upstream_nginx.pid, node.control_plane_pid])
            node.apply(service_config(upstream))
            url = node.proxy + "/"
            wrk(url, seconds=1)
            for _ in range(args.rounds):
                cpu, rps = _cpu_per_request(pid, url, args.seconds)
                idle.append(cpu)
                print(f"other CPUs idle:         {cpu:5.1f} µs per request, {rps:7.0f} RPS")
                loops = [
                    subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in cpus[:-1]
                ]  # inherit this process's CPUs: all but the node's
                try:
                    settle(0.2)
                    cpu, rps = _cpu_per_request(pid, url, args.seconds)
                    busy.append(cpu)
                    print(f"other CPUs busy-looping: {cpu:5.1f} µs per request, {rps:7.0f} RPS")
                finally:
                    for loop in loops:
                        loop.kill()
                        loop.wait()
                settle(0.2)
    ratio = statistics.median(busy) / statistics.median(idle)
    print(
        f"\nthe node's CPU per request with the other CPUs busy: {ratio:.2f}x "
        f"(medians of {args.rounds}: {statistics.median(busy):.1f} against "
        f"{statistics.median(idle):.1f} µs)"
    )


if __name__ == "__main__":
    main()
