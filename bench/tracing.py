"""What tracing costs a node: side by side in one run, in front of the same nginx upstream.

1. a node started with ``ACTIVETRACE_TRACING=false`` (sessions ignored: the baseline);
2. the normal node with no session;
3. with an active session whose rule matches nothing on the benchmarked route;
4. with a session tracing every request (spans built, encoded, exported to the control plane).

wrk (one thread, 32 connections) drives each, all four in every round (4 rounds by default, the
best of each kept), so that the VM's slower minutes weigh on every scenario alike. The nodes get
the last CPU to themselves; wrk, the upstream and the control planes (niced) share the others
(``--shared-cpus`` turns this off). The control plane is paused (SIGSTOP) while wrk runs and
resumed after: in production it runs on its own host, and here, storing the traced run's spans
on the other CPU, it took that CPU from wrk and the upstream (the traced run's p99 read 2.2x
the untraced one's with it running, 1.1x-1.5x paused), and a busy other vCPU can slow the
node's own (``bench.neighbour``: 1.30x its CPU per request on one VM;
docs/benchmarks-history.md).
CPU per request is the node process's user+system time over the run (its threads' run times
in nanoseconds, from /proc), plus what it spent after the run until the control plane had
acknowledged every span (less its idle CPU over that time, measured right after), divided by
the requests wrk completed.

wrk spreads its requests over 8 routes in turn (``/r0`` to ``/r7``, one service) in every
scenario. A session keeps at most 10,000 traces, so the traced run has one session per route
(80,000 traces): it lasts 3-5 s at this VM's rates instead of the 1 s one session allows, which
narrows the noise of its CPU figure; at a higher rate it ends with untraced requests, so the
table's RPS for that round is partly untraced. The node's traced-requests counter says how many
were traced; the last lines give the extra CPU per traced request and the RPS ratio a wholly
traced round would read (the node is CPU-bound on its own CPU, so its RPS goes as 1 / CPU per
request). CPU is also split into user and system time, with the node's page faults per
request beside it (new memory touched: each a trap into the kernel). A last line pairs each
round's traced run with the mean of the untraced runs just before and just after it and gives
the median extra CPU per traced request (and its range), which the VM's drift between minutes
moves less than the best rounds do; the line before it says how far the untraced runs on either
side drifted apart.
On this 2-CPU VM the user/system split moves from run to run.

``--relay`` connects each node through ``bench.relay``, which acknowledges span batches as they
arrive and drops them (the control plane stores none): the node then exports during the run as
to a collector on its own host that keeps up, instead of holding the run's spans until the
paused control plane resumes.

Goals (issue 6): (2) within 2 % of (1); (4) at most 20 µs more CPU per request and at most
25 % fewer RPS than (2); p99 <= 2x untraced.

Run: ``.venv/bin/python -m bench.tracing [--seconds 6]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.gateway import (
    UPSTREAM_SERVER,
    Gateway,
    WrkResult,
    cpu_seconds,
    ensure_tools,
    free_port,
    gateway,
    isolate,
    nginx,
    other_threads_seconds,
    page_faults,
    paths_script,
    print_table,
    service_config,
    settle,
    temporary_dir,
    wrk,
)
from controlplane.launcher import wait_until

MAX_SAMPLES = 10_000  # the API's per-session maximum
ROUTES = 8  # routes wrk spreads its requests over; the traced run has a session on each
AFTER = "no session, after the traced run"
DRAIN_POLL = 0.05  # seconds between polls of the node's export queue
QUEUE = {"ACTIVETRACE_MAX_QUEUED_SPANS": "1000000"}
"""Room for every span of a traced run (up to 80,000 traces of 8 spans here) while the control
plane is paused: the node sends them all once it resumes, and that sending is counted (none is
dropped)."""


@dataclass
class Run:
    """One measured scenario."""

    result: WrkResult
    cpu_us: float
    system_us: float
    """Of ``cpu_us``, the kernel's part (system time)."""
    drain_us: float = 0.0
    """Of ``cpu_us``, what the node spent after the run sending its spans (the control plane
    was paused during the run), less its idle CPU over that time."""
    threads_us: float = 0.0
    """Of ``cpu_us``, the node's threads other than its main one (gRPC's, sending the span
    batches), over the run and the drain (their idle CPU not taken off: it is ~0)."""
    faults: float = 0.0
    """Page faults per request (minor and major), over the run and the drain: new memory the
    node touched (each a trap into the kernel: part of ``system_us``)."""
    traced: float = 1.0
    """The share of the run's requests that were traced (each session keeps max_samples)."""


def _measure(
    gw: Gateway, seconds: float, connections: int, script: Path, *, warm: bool = True
) -> Run:
    """One wrk run (``script``: its paths) with the control plane paused; the node's CPU per
    request, counted until its export has drained once the control plane resumed (less what
    it spends idle then)."""
    pid = gw.node_pid
    if warm:
        wrk(gw.proxy + "/", seconds=1, connections=connections, script=script)
        settle()
    user, system = cpu_seconds(pid)
    threads = other_threads_seconds(pid)
    faults = page_faults(pid)
    with paused(gw.control_plane_pid):
        result = wrk(gw.proxy + "/", seconds=seconds, connections=connections, script=script)
    served = sum(cpu_seconds(pid))
    drain_started = time.monotonic()
    wait_until(
        lambda: gw.spans_queued() == 0,
        what="the node's export to drain",
        timeout=120,
        interval=DRAIN_POLL,
    )
    draining = time.monotonic() - drain_started
    user_after, system_after = cpu_seconds(pid)
    threads_after = other_threads_seconds(pid)
    faults_after = page_faults(pid)
    drained = 0.0
    if draining > DRAIN_POLL:  # spans were sent: less the node's idle CPU over that time
        idle = _idle_rate(gw, max(1.0, draining))
        drained = max(0.0, user_after + system_after - served - idle * draining)
    requests = result.rps * round(seconds) / 1e6
    system_us = (system_after - system) / requests
    cpu_us = (served - user - system + drained) / requests
    threads_us = (threads_after - threads) / requests
    faults_per_request = (faults_after - faults) / (requests * 1e6)  # (requests: millions)
    return Run(result, cpu_us, system_us, drained / requests, threads_us, faults_per_request)


def _idle_rate(gw: Gateway, seconds: float) -> float:
    """The node's CPU seconds per second while idle and polled as during a drain (heartbeats,
    progress reports, ``/status``): what the drain accounting of :func:`_measure` leaves out."""
    pid = gw.node_pid
    before = sum(cpu_seconds(pid))
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        gw.spans_queued()
        time.sleep(DRAIN_POLL)
    return (sum(cpu_seconds(pid)) - before) / (time.monotonic() - started)


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """Stop a process (SIGSTOP) for the block, then let it go on."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _best(runs: list[Run]) -> Run:
    """The round with the most RPS (the least disturbed by the rest of the machine)."""
    return max(runs, key=lambda run: run.result.rps)


def _cpu(run: Run) -> float:
    return run.cpu_us


def _threads(run: Run) -> float:
    return run.threads_us


def _paired(
    before: list[Run], traced: list[Run], after: list[Run], value: Callable[[Run], float]
) -> list[float]:
    """Each round's traced run against the mean of the untraced runs just before and after it:
    how much more ``value`` (µs per request) per traced request, sorted (one run per round in
    each list, in order; rounds whose sessions traced nothing left out)."""
    return sorted(
        (value(run) - (value(first) + value(last)) / 2) / run.traced
        for first, run, last in zip(before, traced, after, strict=True)
        if run.traced > 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per run")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (best kept)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="let every process use every CPU (wrk and the upstream then compete with the node)",
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help="nodes export through bench.relay, which acknowledges span batches at once",
    )
    args = parser.parse_args()
    ensure_tools()
    rounds: dict[str, list[Run]] = {}

    def record(name: str, run: Run) -> None:
        rounds.setdefault(name, []).append(run)

    every = "tracing every request"
    with temporary_dir() as tmp:
        workdir = Path(tmp)
        upstream = free_port()
        with (
            nginx("upstream", UPSTREAM_SERVER.format(port=upstream), workdir) as upstream_nginx,
            gateway(
                workdir / "off",
                node_env={**QUEUE, "ACTIVETRACE_TRACING": "false"},
                relay=args.relay,
            ) as off,
            gateway(workdir / "on", node_env=QUEUE, relay=args.relay) as on,
        ):
            layout = "every process on every CPU"
            if not args.shared_cpus:
                control_planes = [off.control_plane_pid, on.control_plane_pid]
                control_planes += [pid for pid in (off.relay_pid, on.relay_pid) if pid]
                layout = (
                    isolate(
                        [off.node_pid, on.node_pid],
                        [upstream_nginx.pid, *control_planes],
                        nice=control_planes,
                    )
                    or layout
                )
            config = service_config(upstream)
            routes = [f"bench-{index}" for index in range(ROUTES)]
            config["services"][0]["routes"] = [
                {"name": name, "paths": [f"/r{index}"]} for index, name in enumerate(routes)
            ]
            off.apply(config)
            on.apply(config)
            script = paths_script([f"/r{index}/" for index in range(ROUTES)], workdir)

            def measure(gw: Gateway, seconds: float, *, warm: bool = True) -> Run:
                return _measure(gw, seconds, args.connections, script, warm=warm)

            nothing = {
                "scope": {"service": "bench"},
                "sampling_rule": 'http.path ^= "/nothing-here"',
                "max_samples": MAX_SAMPLES,
                "duration_secs": 600,
            }
            seconds = 1.0
            # Every scenario in every round, so that a slower minute of this VM weighs on all
            # of them alike (the traced one is shorter: its sessions keep 10,000 traces each).
            for _ in range(args.rounds):
                record("tracing disabled (baseline)", measure(off, args.seconds))
                on.session(nothing)
                record("session matching nothing", measure(on, args.seconds))
                on.stop_sessions()
                # The untraced runs on either side of the traced one: the pairing below takes
                # their mean, which cancels the VM's drift between minutes.
                untraced = measure(on, args.seconds)
                record("no session", untraced)
                rps = untraced.result.rps
                room = MAX_SAMPLES * ROUTES * 0.8  # traces the sessions keep, with a margin
                seconds = float(max(1, min(int(args.seconds), int(room / rps))))
                for route in routes:  # new sessions each round: max_samples bounds each
                    on.session(
                        {
                            "scope": {"route": route},
                            "max_samples": MAX_SAMPLES,
                            "duration_secs": 600,
                        }
                    )
                before = on.traced_requests()
                run = measure(on, seconds, warm=False)
                traced = on.traced_requests() - before
                run.traced = min(1.0, traced / (run.result.rps * round(seconds)))
                on.stop_sessions()
                record(every, run)
                # The control plane has every span (measure waited for the node's export to
                # drain): the same node untraced again.
                settle()
                record(AFTER, measure(on, args.seconds, warm=False))
            dropped = on.spans_dropped()
    after_rounds = rounds.pop(AFTER)
    runs = {name: _best(measured) for name, measured in rounds.items()}
    print_table(
        f"Tracing cost, wrk -t1 -c{args.connections}, best of {args.rounds} interleaved rounds "
        f"({args.seconds:.0f}s each; tracing every request {seconds:.0f}s); {layout}",
        [(name, run.result) for name, run in runs.items()],
        baseline="tracing disabled (baseline)",
    )
    untraced = runs["no session"]
    traced_run = runs[every]
    print(
        f"\n{every} against no session (the same node, sessions off): RPS "
        f"{traced_run.result.rps / untraced.result.rps:.2f}x, p99 "
        f"{traced_run.result.p99_ms / untraced.result.p99_ms:.2f}x"
    )
    print(
        f"spans the node dropped (its export buffer full): {dropped:,}"
        + (" (their sending is not counted)" if dropped else "")
    )
    base_cpu = untraced.cpu_us
    base_system = untraced.system_us
    print(
        f"\n{'':34} {'CPU µs/request':>15} {'vs no session':>14} {'of which system':>16} "
        f"{'page faults/request':>20}"
    )
    for name, run in runs.items():
        print(
            f"{name:34} {run.cpu_us:15.1f} {run.cpu_us - base_cpu:+14.1f} "
            f"{run.system_us - base_system:+16.1f} {run.faults:20.2f}"
        )
    share = traced_run.traced
    if share > 0:  # (below 1 when the sessions filled before the run ended)
        per_traced = (traced_run.cpu_us - base_cpu) / share
        system = (traced_run.system_us - base_system) / share
        threads = (traced_run.threads_us - untraced.threads_us) / share
        faults = (traced_run.faults - untraced.faults) / share
        print(
            f"\n{every}: {share:.0%} of that round's requests were traced ({ROUTES} sessions "
            f"keep {MAX_SAMPLES:,} each); per traced request that is {per_traced:+.1f} µs of CPU "
            f"({per_traced - system:+.1f} user, {system:+.1f} system), of which "
            f"{traced_run.drain_us / share:.1f} µs after the run, sending its spans once the "
            f"control plane resumed, and {threads:+.1f} µs in gRPC's threads (its sending); "
            f"{faults:+.2f} page faults"
        )
        # The node has its CPU to itself and is saturated, so its RPS goes as 1 / CPU per
        # request: what a round traced from start to end would read.
        print(
            f"with every request traced the node would do {base_cpu / (base_cpu + per_traced):.2f}x"
            " the RPS of no session (its CPU per request, untraced over traced)"
        )
    # The best rounds above may come from different minutes of the VM; each round's traced
    # run against the mean of the untraced runs on either side of it cancels that drift
    # (every list holds one run per round, in order).
    paired_untraced = rounds["no session"]
    around = [
        (before.cpu_us + after.cpu_us) / 2
        for before, after in zip(paired_untraced, after_rounds, strict=True)
    ]
    paired = _paired(paired_untraced, rounds[every], after_rounds, _cpu)
    drift = sorted(
        after.cpu_us - before.cpu_us
        for before, after in zip(paired_untraced, after_rounds, strict=True)
    )
    baseline_rounds = rounds["tracing disabled (baseline)"]
    ratios = sorted(
        run.result.rps / baseline.result.rps
        for baseline, run in zip(baseline_rounds, paired_untraced, strict=True)
    )
    print(
        f"round by round, no session against the same round's baseline: RPS "
        f"{statistics.median(ratios):.2f}x, median of {len(ratios)} (from {ratios[0]:.2f}x to "
        f"{ratios[-1]:.2f}x)"
    )
    print(
        f"untraced CPU per request, the run after the traced one minus the run before it: "
        f"median {statistics.median(drift):+.1f} µs (from {drift[0]:+.1f} to {drift[-1]:+.1f})"
    )
    if paired:
        median = statistics.median(paired)
        base = statistics.median(around)
        print(
            f"round by round (traced against the mean of the untraced runs before and after it): "
            f"{median:+.1f} µs per traced request, median of {len(paired)} (from "
            f"{paired[0]:+.1f} to {paired[-1]:+.1f}); wholly traced {base / (base + median):.2f}x"
            " the RPS"
        )
    sending = _paired(paired_untraced, rounds[every], after_rounds, _threads)
    if sending:
        print(
            f"of the extra, in the node's gRPC threads (sending the span batches) round by round: "
            f"median {statistics.median(sending):+.2f} µs per traced request (from "
            f"{sending[0]:+.2f} to {sending[-1]:+.2f})"
        )


if __name__ == "__main__":
    main()
