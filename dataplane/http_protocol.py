"""uvicorn's httptools protocol, stamping when a request's first bytes were parsed.

A request's root span starts at its first byte in, not when the ASGI task first runs: under
load the two are apart by however long the task waited for the event loop.
"""

from __future__ import annotations

import time
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["RECEIVED_NS", "StampedHttpToolsProtocol"]

RECEIVED_NS: Final = "activetrace.received_ns"
_perf = time.perf_counter_ns


class StampedHttpToolsProtocol(HttpToolsProtocol):
    """Adds ``scope["activetrace.received_ns"]`` (``perf_counter_ns``) to every request."""

    def on_message_begin(self) -> None:
        """The parser saw the start of a request."""
        super().on_message_begin()
        self.scope[RECEIVED_NS] = _perf()  # type: ignore[typeddict-unknown-key]
