"""Running uvicorn servers inside our own event loop, with one owner of shutdown signals.

uvicorn's ``Server.serve`` captures SIGINT/SIGTERM and re-raises them after it stops, which
would kill the process before the rest of it (gRPC, tasks, database) shuts down cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Generator, Sequence
from typing import Protocol

import uvicorn

__all__ = ["EmbeddedServer", "Stoppable", "stop_on_signals"]


class Stoppable(Protocol):
    """A server stopped by setting flags (uvicorn's ``Server`` and ``HttpServer`` alike)."""

    should_exit: bool
    force_exit: bool


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Signals are handled by :func:`stop_on_signals`."""
        yield


def stop_on_signals(servers: Sequence[Stoppable]) -> asyncio.Event:
    """On SIGINT/SIGTERM ask every server to exit; returns an event set at that moment."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if stopping.is_set():  # a second Ctrl-C: stop without waiting for connections
            for server in servers:
                server.force_exit = True
        stopping.set()
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    return stopping
