"""Where the request path runs bytecode CPython could not specialize.

CPython 3.11's specializing interpreter rewrites an attribute read, a method lookup or a call
into a fast form for what it sees at that instruction (a slot, a module global, a Python
function...). Some it cannot: an attribute of a class with ``__getattr__`` (a pydantic model),
a property, a C type's ``T_BOOL`` or integer member, a NamedTuple field, a method of an object
with a dict slot (an asyncio future, an OrderedDict), an attribute of a class, a call to a
``METH_NOARGS`` builtin. Such an instruction stays in its generic (``*_ADAPTIVE``) form and costs
~100-300 instructions where a specialized one costs ~10-20 (docs/benchmarks-history.md,
thirteenth session, where this found ~10k instructions per request).

This runs a node (as ``bench.instructions`` does, in front of nginx, uvloop), warms it with
traffic, takes every ``dataplane`` function's quickened bytecode (``dis``, ``adaptive=True``),
then records which instructions further requests execute (a ``sys.settrace`` opcode trace) and
prints the executed ones that are still generic, with their source line. ``--traced`` opens a
session tracing every request first.

Run: ``.venv/bin/python -m bench.specialization [--traced]``

``--count`` instead counts the bytecodes each function runs per request, untraced and then with
a session tracing every request, and prints the functions by what tracing adds (how the
fourteenth session found where a traced request's ~660 extra bytecodes are).
"""

from __future__ import annotations

import argparse
import dis
import json
import os
import signal
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Site",
    "bytecodes_run",
    "code_objects",
    "executed_offsets",
    "generic_sites",
    "unspecialized",
]

SITE_DIR = Path(__file__).resolve().parent / "specialization_site"
"""Holds the ``sitecustomize`` that installs :func:`install_signals` in the node."""
FAMILIES = ("LOAD_ATTR", "STORE_ATTR", "LOAD_METHOD", "PRECALL", "BINARY_SUBSCR", "COMPARE_OP")
"""The instructions reported: reads, method lookups, calls (3.11's PRECALL carries a call's
specialization), subscripts and comparisons. A family's base name or its ``*_ADAPTIVE`` form
is generic; any other name (``LOAD_ATTR_SLOT``...) is specialized."""

CodeKey = tuple[str, int, str, int]
"""(file, first line, name, instruction offset)."""
FunctionKey = tuple[str, int, str]
"""(file, first line, name)."""


@dataclass(frozen=True, slots=True)
class Site:
    """One generic instruction that ran."""

    filename: str
    line: int
    function: str
    opname: str
    argument: str


def _generic(opname: str) -> bool:
    return any(opname in (family, family + "_ADAPTIVE") for family in FAMILIES)


def code_objects(prefix: str) -> Iterator[types.CodeType]:
    """Every code object of the loaded modules named ``prefix``...: their functions, their
    classes' methods (properties' getters included) and what those define inside."""
    seen: set[int] = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith(prefix) or module is None:
            continue
        stack: list[types.CodeType] = []
        for value in list(vars(module).values()):
            if isinstance(value, types.FunctionType) and value.__module__ == name:
                stack.append(value.__code__)
            elif isinstance(value, type) and value.__module__ == name:
                for member in vars(value).values():
                    if isinstance(member, staticmethod | classmethod):
                        member = member.__func__
                    if isinstance(member, property):
                        member = member.fget
                    if isinstance(member, types.FunctionType):
                        stack.append(member.__code__)
        while stack:
            code = stack.pop()
            if id(code) in seen:
                continue
            seen.add(id(code))
            yield code
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


def generic_sites(codes: Iterable[types.CodeType]) -> dict[CodeKey, Site]:
    """The instructions of ``codes`` still generic in their quickened form, by location."""
    sites: dict[CodeKey, Site] = {}
    for code in codes:
        for instruction in dis.get_instructions(code, adaptive=True):
            if _generic(instruction.opname):
                line = instruction.positions.lineno if instruction.positions else None
                key = (code.co_filename, code.co_firstlineno, code.co_name, instruction.offset)
                sites[key] = Site(
                    code.co_filename,
                    line or code.co_firstlineno,
                    code.co_name,
                    instruction.opname,
                    str(instruction.argval),
                )
    return sites


class _Recorder:
    """The (code, offset) of every instruction run while it is on (``sys.settrace``), and how
    many instructions each function ran."""

    def __init__(self) -> None:
        self.executed: set[CodeKey] = set()
        self.counts: Counter[FunctionKey] = Counter()

    def _local(self, frame: types.FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if event == "opcode":
            code = frame.f_code
            self.executed.add((code.co_filename, code.co_firstlineno, code.co_name, frame.f_lasti))
            self.counts[(code.co_filename, code.co_firstlineno, code.co_name)] += 1
        return self._local

    def _global(self, frame: types.FrameType, event: str, arg: Any) -> Callable[..., Any]:
        frame.f_trace_opcodes = True
        return self._local

    def start(self) -> None:
        self.executed.clear()
        self.counts.clear()
        sys.settrace(self._global)
        threading.settrace(self._global)

    def stop(self) -> set[CodeKey]:
        sys.settrace(None)
        threading.settrace(None)
        return set(self.executed)


def executed_offsets(run: Callable[[], object]) -> set[CodeKey]:
    """The instructions ``run()`` executes (in this thread and threads it starts)."""
    recorder = _Recorder()
    recorder.start()
    try:
        run()
    finally:
        executed = recorder.stop()
    return executed


def bytecodes_run(run: Callable[[], object]) -> Counter[FunctionKey]:
    """How many bytecodes each function ran while ``run()`` ran (this thread and threads it
    starts)."""
    recorder = _Recorder()
    recorder.start()
    try:
        run()
    finally:
        recorder.stop()
    return Counter(recorder.counts)


def unspecialized(generic: dict[CodeKey, Site], executed: set[CodeKey]) -> list[Site]:
    """The generic instructions that ran, in source order."""
    found = {generic[key] for key in executed if key in generic}
    return sorted(found, key=lambda site: (site.filename, site.line, site.opname))


def install_signals(report: Path, prefix: str = "dataplane") -> None:
    """In the node (``sitecustomize``): SIGUSR1 takes the generic sites of the warmed code,
    SIGUSR2 starts recording, SIGHUP stops and writes what ran generic to ``report`` (JSON)."""
    state: dict[str, Any] = {"generic": {}}
    recorder = _Recorder()

    def snapshot(*_: object) -> None:
        state["generic"] = generic_sites(code_objects(prefix))

    def start(*_: object) -> None:
        recorder.start()

    def stop(*_: object) -> None:
        sites = unspecialized(state["generic"], recorder.stop())
        counts = [[*key, count] for key, count in recorder.counts.items()]
        report.write_text(json.dumps({"sites": [asdict(site) for site in sites], "counts": counts}))

    signal.signal(signal.SIGUSR1, snapshot)
    signal.signal(signal.SIGUSR2, start)
    signal.signal(signal.SIGHUP, stop)


def main() -> None:
    import httpx

    from bench.gateway import (
        UPSTREAM_SERVER,
        ensure_tools,
        free_port,
        gateway,
        nginx,
        paths_script,
        service_config,
        temporary_dir,
        wrk,
    )
    from controlplane.launcher import wait_until

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traced", action="store_true", help="a session traces every request")
    parser.add_argument(
        "--count",
        action="store_true",
        help="bytecodes per request by function, untraced and traced (instead of generic ones)",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests recorded")
    args = parser.parse_args()
    ensure_tools()
    reports: list[dict[str, Any]] = []
    with temporary_dir() as tmp:
        workdir = Path(tmp)
        report = workdir / "report.json"
        upstream = free_port()
        repository = str(SITE_DIR.parent.parent)  # for the site's ``import bench``
        path = os.pathsep.join([str(SITE_DIR), repository, os.environ.get("PYTHONPATH", "")])
        env = {"PYTHONPATH": path, "ACTIVETRACE_SPECIALIZATION_REPORT": str(report)}
        with (
            nginx("upstream", UPSTREAM_SERVER.format(port=upstream), workdir),
            gateway(workdir / "node", node_env=env) as node,
            httpx.Client(base_url=node.proxy) as client,
        ):
            node.apply(service_config(upstream))

            def record(*, traced: bool = False) -> dict[str, Any]:
                wrk(node.proxy + "/", seconds=1, connections=8, script=paths_script(["/"], workdir))
                if traced:  # (after wrk, which would fill its 10,000 samples in well under 1 s)
                    node.session({"scope": {"service": "bench"}, "max_samples": 10_000})
                for _ in range(300):  # the client's own headers too
                    client.get("/")
                os.kill(node.node_pid, signal.SIGUSR1)
                time.sleep(1)  # (a snapshot of every function's bytecode)
                os.kill(node.node_pid, signal.SIGUSR2)
                time.sleep(0.2)
                for _ in range(args.requests):
                    client.get("/")
                time.sleep(0.5)  # (what the requests left for the loop: export, timers)
                os.kill(node.node_pid, signal.SIGHUP)
                wait_until(report.exists, what="the node's report", timeout=30)
                recorded: dict[str, Any] = json.loads(report.read_text())
                report.unlink()
                return recorded

            if args.count:
                reports.append(record())
            reports.append(record(traced=args.traced or args.count))
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    if args.count:
        untraced, traced = (_per_request(r["counts"], args.requests) for r in reports)
        _print_counts(untraced, traced, root)
        return
    sites = [Site(**fields) for fields in reports[-1]["sites"]]
    print(f"{len(sites)} generic instructions ran on the request path:")
    for site in sites:
        source = ""
        if os.path.exists(site.filename):
            lines = Path(site.filename).read_text().splitlines()
            source = lines[site.line - 1].strip() if 0 < site.line <= len(lines) else ""
        where = site.filename.removeprefix(root)
        print(f"{where}:{site.line} {site.function} {site.opname} {site.argument}: {source}")


def _per_request(counts: list[list[Any]], requests: int) -> dict[FunctionKey, float]:
    return {(file, line, name): count / requests for file, line, name, count in counts}


def _print_counts(
    untraced: dict[FunctionKey, float], traced: dict[FunctionKey, float], root: str
) -> None:
    """Bytecodes per request by function, those tracing adds most first."""
    print(
        f"bytecodes per request: untraced {sum(untraced.values()):,.0f}, "
        f"tracing every request {sum(traced.values()):,.0f}\n"
    )
    print(f"{'added':>8} {'traced':>8} {'untraced':>9}  function")
    keys = sorted(set(untraced) | set(traced), key=lambda k: untraced.get(k, 0) - traced.get(k, 0))
    for key in keys[:30]:
        before, after = untraced.get(key, 0.0), traced.get(key, 0.0)
        where = key[0].split("site-packages/")[-1].removeprefix(root)
        print(f"{after - before:8.1f} {after:8.1f} {before:9.1f}  {where}:{key[1]} {key[2]}")


if __name__ == "__main__":
    main()
