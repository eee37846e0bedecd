"""The client-facing HTTP server alone: uvicorn and the node's own, a trivial app, side by side.

Each server runs a tiny ASGI app (a 40-byte JSON answer) in its own process on uvloop; wrk (one
thread, 32 connections) drives each in turn. This is the layer the node replaced uvicorn with
(``dataplane/server.py``): the difference is per-request work the proxy no longer pays.

Run: ``.venv/bin/python -m bench.server [--seconds 5]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from bench.gateway import WrkResult, ensure_tools, free_port, print_table, settle, wrk
from controlplane.launcher import wait_until

BODY = b'{"status":"ok","service":"bench-upstream"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    """The trivial app both servers run."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def serve(kind: str, port: int) -> None:
    """Child process: serve :func:`app` with ``kind`` on ``port`` until killed."""
    import uvloop

    if kind == "uvicorn":
        import uvicorn

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            http="httptools",
            loop="uvloop",
            lifespan="off",
            access_log=False,
            log_config=None,
        )
        uvicorn.Server(config).run()
    else:
        from dataplane.server import HttpServer

        uvloop.run(HttpServer(app, "127.0.0.1", port).serve())


@contextmanager
def running(kind: str) -> Iterator[str]:
    """A server process of ``kind``; yields its URL once it answers."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.server", "--serve", kind, str(port)])
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: _answers(url), what=f"the {kind} server")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per run")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    ensure_tools()
    rows: list[tuple[str, WrkResult]] = []
    with running("uvicorn") as uvicorn_url, running("activetrace") as own_url:
        for name, url in (("uvicorn + httptools", uvicorn_url), ("dataplane.server", own_url)):
            wrk(url, seconds=1)
            rows.append((name, wrk(url, seconds=args.seconds)))
            settle()
    print_table(
        f"HTTP server layer, trivial ASGI app, wrk -t1 -c32, {args.seconds:.0f}s per run",
        rows,
        baseline="uvicorn + httptools",
    )


if __name__ == "__main__":
    main()
