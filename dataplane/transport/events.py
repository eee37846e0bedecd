"""The ``trace`` request extension: the callback type and the phase names it hears.

Each phase is reported as ``<name>.started`` then ``<name>.complete`` (or ``<name>.failed``
with ``error_type`` and ``error``); ``connection.reused`` is a single event. Calls are
synchronous and only made when the request carries a ``trace`` callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias

__all__ = [
    "BODY",
    "BODY_COMPLETE",
    "BODY_STARTED",
    "CONNECT_TCP",
    "DNS",
    "HEAD",
    "HEAD_COMPLETE",
    "HEAD_STARTED",
    "REUSED",
    "SEND",
    "SEND_COMPLETE",
    "SEND_STARTED",
    "START_TLS",
    "Trace",
]

Trace: TypeAlias = Callable[[str, dict[str, Any]], object]
"""Called as ``trace(event_name, info)``."""

DNS: Final = "dns.resolve"
CONNECT_TCP: Final = "connection.connect_tcp"
REUSED: Final = "connection.reused"
START_TLS: Final = "connection.start_tls"
SEND: Final = "http11.send_request_headers"
"""From before the request head is written until the whole body has been written."""
HEAD: Final = "http11.receive_response_headers"
"""From the request sent until the response head is parsed (time to first byte)."""
BODY: Final = "http11.receive_response_body"
"""From the response head until the end of the body (info: ``bytes``)."""

# The events of every traced exchange, spelled once (not concatenated per request).
SEND_STARTED: Final = SEND + ".started"
SEND_COMPLETE: Final = SEND + ".complete"
HEAD_STARTED: Final = HEAD + ".started"
HEAD_COMPLETE: Final = HEAD + ".complete"
BODY_STARTED: Final = BODY + ".started"
BODY_COMPLETE: Final = BODY + ".complete"
