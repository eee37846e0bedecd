"""Instructions per proxied request (callgrind): a node's work, counted instead of timed.

Wall-clock benchmarks on this VM move by ±10 % between runs, more than most single changes
are worth. valgrind's callgrind counts the instructions the node executes, which repeat to
within ~0.3 % for the same build and load. This runs a node under callgrind in front of nginx,
switches counting on after a warm-up, sends a fixed number of requests (8 keep-alive
connections) and divides. Modes: no plugins; key-auth + rate-limiting (local) +
correlation-id; a session whose rule matches nothing; a session tracing every request.

``--against REF`` also builds the tree at git ``REF`` (a worktree, its C extensions compiled)
and prints both side by side with their ratio. System calls and the kernel's work are not
counted: instructions track the node's own CPU (user time), not its system time.

``--cache-sim`` also simulates the caches and branch predictors (callgrind's cache and branch
simulation: first-level caches as detected, a 32 MB 16-way last-level cache as this VM's L3,
which valgrind detects wrongly) and prints, per request, first-level and last-level cache
misses, mispredicted branches and KCachegrind's cycle estimate (instructions + 10 per
first-level miss + 100 per last-level miss + 10 per mispredicted branch): what a request costs
beyond its instruction count, on a VM without hardware counters.

Run: ``.venv/bin/python -m bench.instructions [--against HEAD~3] [--requests 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.gateway import (
    BENCH_ENV,
    UPSTREAM_SERVER,
    api_call,
    control_plane_args,
    ensure_tools,
    nginx,
    node_args,
    service_config,
    temporary_dir,
)
from bench.proxy import PLUGINS
from controlplane.launcher import free_port, start, stop_all, wait_until

ROOT = Path(__file__).resolve().parent.parent
MODES = ("no plugins", "3 plugins", "session matching nothing", "tracing every request")
SIMULATION = ("--cache-sim=yes", "--branch-sim=yes", "--LL=33554432,16,64")
NOTHING = 'http.path ^= "/nothing-here"'
FULL_BATCHES = {"ACTIVETRACE_EXPORT_FLUSH_INTERVAL_SECS": "10"}
"""The node sends its span batches when they fill (2,048 spans), as it does at full speed (a
batch fills in ~20 ms there): under callgrind it runs ~50x slower, and with the default 0.2 s
interval its batches went out a few dozen traces at a time, each batch's cost (joining,
sending, the ack) spread over fewer traces than in production, more so with --cache-sim
(slower still): +3k instructions per traced request at 4,000 requests, more in simulation. A
tree older than the setting ignores it (compare such a tree's traced count with care)."""


async def _load(port: int, requests: int, connections: int, headers: bytes) -> None:
    """``requests`` GETs over ``connections`` keep-alive connections; every answer is a 200."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n%b\r\n" % headers

    async def one(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 "), head[:200]
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert length is not None, head[:200]
                await reader.readexactly(int(length.group(1)))
        finally:
            writer.close()

    await asyncio.gather(*(one(requests // connections) for _ in range(connections)))


def _compile_extensions(tree: Path) -> None:
    """Build a worktree's C extensions in place (what hatch_build.py does on install)."""
    suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
    include = sysconfig.get_paths()["include"]
    for source in [*tree.glob("dataplane/*.c"), *tree.glob("dataplane/tracing/*.c")]:
        target = source.with_name(source.stem + suffix)
        subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)],
            check=True,
        )


@contextlib.contextmanager
def _worktree(ref: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="activetrace-ref-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), ref],
            check=True,
        )
        try:
            _compile_extensions(tree)
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True
            )


def _summary(dump: str) -> dict[str, int]:
    """A callgrind dump's totals by event (its ``events:`` and ``summary:`` lines)."""
    names = re.search(r"^events:\s+(.+)$", dump, re.M)
    totals = re.search(r"^summary:\s+(.+)$", dump, re.M)
    if names is None or totals is None:
        return {}
    return dict(zip(names.group(1).split(), map(int, totals.group(1).split()), strict=False))


def _misses(events: dict[str, float]) -> tuple[float, float, float, float]:
    """Simulated misses: first-level instruction, first-level data, last-level (both), and
    mispredicted branches (conditional and indirect)."""
    return (
        events.get("I1mr", 0.0),
        events.get("D1mr", 0.0) + events.get("D1mw", 0.0),
        sum(events.get(name, 0.0) for name in ("ILmr", "DLmr", "DLmw")),
        events.get("Bcm", 0.0) + events.get("Bim", 0.0),
    )


def cycle_estimate(events: dict[str, float]) -> float:
    """KCachegrind's cycle estimate from simulated events: each instruction one cycle, a
    first-level miss 10 more, a last-level miss 100, a mispredicted branch 10."""
    instruction, data, last, branches = _misses(events)
    return events["Ir"] + 10 * (instruction + data) + 100 * last + 10 * branches


class Bench:
    """A control plane and an nginx upstream; nodes run one at a time under callgrind."""

    def __init__(
        self,
        workdir: Path,
        api: str,
        cluster_port: int,
        upstream: int,
        keep: Path | None = None,
        *,
        simulate: bool = False,
    ) -> None:
        self.workdir = workdir
        self.keep = keep
        self.simulate = simulate
        self.api = api
        self.cluster_port = cluster_port
        self.upstream = upstream
        self.runs = 0

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return api_call(self.api, method, path, timeout=30, **kwargs)

    def measure(self, tree: Path, mode: str, requests: int) -> dict[str, float]:
        """callgrind's events per request of a node built from ``tree`` in ``mode``: ``Ir``
        (instructions) and, with ``simulate``, cache misses and mispredicted branches."""
        self.runs += 1
        node_id = f"node-{self.runs}"
        config = service_config(self.upstream, PLUGINS if mode == "3 plugins" else None)
        headers = b""
        if mode == "3 plugins":
            config["consumers"] = [{"username": "bench", "keyauth_credentials": [{"key": "k"}]}]
            headers = b"apikey: k\r\n"
        self.call("PUT", "/api/v1/config", json=config)
        port = free_port()
        out = self.workdir / f"callgrind-{self.runs}.out"
        log = self.workdir / f"{node_id}.log"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            *(SIMULATION if self.simulate else ()),
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            *node_args(
                node_id, self.cluster_port, port, free_port(), self.workdir / f"cache-{self.runs}"
            ),
        ]
        env = {**os.environ, "PYTHONPATH": str(tree), "ACTIVETRACE_LOG_LEVEL": "warning"}
        env.update(FULL_BATCHES)
        with log.open("wb") as output:
            node = subprocess.Popen(command, env=env, cwd=tree, stdout=output, stderr=output)
        try:
            self._wait_serving(node, port, headers, log)
            if mode != "no plugins" and mode != "3 plugins":
                body: dict[str, Any] = {"targets": [node_id], "max_samples": 10_000}
                if mode == "session matching nothing":
                    body["sampling_rule"] = NOTHING
                session = self.call("POST", "/api/v1/tracing-sessions", json=body)["id"]
                wait_until(
                    lambda: (
                        self.call("GET", f"/api/v1/tracing-sessions/{session}")["targets"][0][
                            "state"
                        ]
                        == "active"
                    ),
                    what="the session to be active",
                    timeout=60,
                )
            asyncio.run(_load(port, 400, 8, headers))  # warm-up, not counted
            control = ["callgrind_control"]
            subprocess.run([*control, "-i", "on", str(node.pid)], check=True, capture_output=True)
            asyncio.run(_load(port, requests, 8, headers))
            subprocess.run([*control, "-d", str(node.pid)], check=True, capture_output=True)
            subprocess.run([*control, "-i", "off", str(node.pid)], check=True, capture_output=True)
        finally:
            node.terminate()
            node.wait(60)
        counted: dict[str, int] = {}
        kept: Path | None = None
        # The dump asked for (out.1); the one valgrind writes at exit counts nothing useful.
        for dump in self.workdir.glob(out.name + ".*"):
            events = _summary(dump.read_text(errors="replace"))
            if events.get("Ir", 0) > counted.get("Ir", 0):
                counted, kept = events, dump
        assert kept is not None, f"no callgrind dump in {self.workdir}"
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
            name = f"callgrind-{mode.replace(' ', '-')}-{self.runs}.out"
            shutil.copyfile(kept, self.keep / name)
        return {event: count / requests for event, count in counted.items()}

    @staticmethod
    def _wait_serving(node: subprocess.Popen[bytes], port: int, headers: bytes, log: Path) -> None:
        extra = dict(line.split(": ", 1) for line in headers.decode().splitlines() if line)
        deadline = time.monotonic() + 300  # a node starts ~30x slower under valgrind
        while True:
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{port}/"
                if httpx.get(url, headers=extra, timeout=10).status_code == 200:
                    return
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node did not serve:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a git ref to compare with (built in a worktree)")
    parser.add_argument("--requests", type=int, default=2000, help="counted requests per mode")
    parser.add_argument("--mode", action="append", choices=MODES, help="only these modes")
    parser.add_argument(
        "--keep",
        type=Path,
        help="copy the callgrind dumps here (callgrind-<mode>.out, for callgrind_annotate)",
    )
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="also simulate caches and branch prediction (misses per request, cycle estimate)",
    )
    args = parser.parse_args()
    ensure_tools(extra=(("valgrind", "valgrind"),))
    modes = args.mode or list(MODES)
    with temporary_dir() as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        trees = [("this tree", ROOT)]
        if args.against:
            trees.append((args.against, stack.enter_context(_worktree(args.against))))
        upstream, api_port, cluster_port = free_port(), free_port(), free_port()
        stack.enter_context(nginx("upstream", UPSTREAM_SERVER.format(port=upstream), workdir))
        control_plane = start(
            "controlplane",
            control_plane_args(workdir, api_port, cluster_port, free_port()),
            env=BENCH_ENV,
            log=workdir / "controlplane.log",
        )
        stack.callback(stop_all, [control_plane])
        api = f"http://127.0.0.1:{api_port}"
        wait_until(
            lambda: httpx.get(api + "/healthz", timeout=2).status_code == 200,
            what="the control plane",
            processes=[control_plane],
        )
        bench = Bench(workdir, api, cluster_port, upstream, args.keep, simulate=args.cache_sim)
        events = {
            (name, mode): bench.measure(tree, mode, args.requests)
            for mode in modes
            for name, tree in trees
        }
    results = {key: counts["Ir"] for key, counts in events.items()}
    print(f"\nInstructions per request (callgrind, {args.requests} requests, 8 connections)")
    header = f"{'':28}" + "".join(f"{name:>16}" for name, _ in trees)
    print(header + ("       ratio" if args.against else ""))
    for mode in modes:
        row = [results[(name, mode)] for name, _ in trees]
        line = f"{mode:28}" + "".join(f"{value:16,.0f}" for value in row)
        if args.against:
            line += f"{row[0] / row[1]:11.3f}x"
        print(line)
    base = results.get(("this tree", "no plugins"))
    if base:
        print("\nthis tree vs no plugins:")
        for mode in modes[1:]:
            value = results.get(("this tree", mode))
            if value:
                print(f"  {mode:28} {value - base:+10,.0f} ({value / base:.2f}x)")
        traced = results.get(("this tree", "tracing every request"))
        if traced:
            # A CPU-bound node's RPS goes as 1 / its work per request: the tracing goal of at
            # most 25 % fewer RPS wholly traced, in instructions (system time not counted).
            print(
                f"\nwholly traced RPS in instructions: {base / traced:.3f}x of untraced "
                f"(goal >= 0.75x; a traced request may add {base / 3:,.0f})"
            )
    if args.cache_sim:
        _print_simulation(events, trees, modes)


def _print_simulation(
    events: dict[tuple[str, str], dict[str, float]],
    trees: list[tuple[str, Path]],
    modes: list[str],
) -> None:
    """Simulated misses per request and the cycle estimate, by tree and mode."""
    print("\nSimulated per request (callgrind --cache-sim --branch-sim):")
    print(
        f"{'':42}{'I1 miss':>9}{'D1 miss':>9}{'LL miss':>9}{'branch miss':>12}"
        f"{'cycles est.':>13}{'cyc/instr':>10}"
    )
    for mode in modes:
        for name, _ in trees:
            counts = events[(name, mode)]
            instruction, data, last, branches = _misses(counts)
            cycles = cycle_estimate(counts)
            print(
                f"{mode + ' (' + name + ')':42}{instruction:9,.0f}{data:9,.0f}"
                f"{last:9,.0f}{branches:12,.0f}{cycles:13,.0f}{cycles / counts['Ir']:10.2f}"
            )
    base = events.get(("this tree", "no plugins"))
    traced = events.get(("this tree", "tracing every request"))
    if base and traced:
        ratio = cycle_estimate(base) / cycle_estimate(traced)
        print(f"\nwholly traced RPS in estimated cycles: {ratio:.3f}x of untraced (goal >= 0.75x)")


if __name__ == "__main__":
    main()
