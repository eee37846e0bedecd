"""The ``trace`` request extension: the callback type and the phase names it hears.

Each phase is reported as ``<name>.started`` then ``<name>.complete`` (or ``<name>.failed``
with ``error_type`` and ``error``); ``connection.reused`` is a single event. Calls are
synchronous and only made when the request carries a ``trace`` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from sys import intern
from types import MappingProxyType
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
    "NO_INFO",
    "REUSED",
    "SEND",
    "SEND_COMPLETE",
    "SEND_STARTED",
    "START_TLS",
    "Trace",
]

Trace: TypeAlias = Callable[[str, Mapping[str, Any]], object]
"""Called as ``trace(event_name, info)``; ``info`` is read only (an event without any shares
:data:`NO_INFO`)."""

NO_INFO: Final[Mapping[str, Any]] = MappingProxyType({})
"""The info of an event that carries none: one shared, read-only empty mapping (a traced
exchange sends four such events, each a new dict before)."""

# Interned, as the phase table's keys are (dataplane/tracing/_wire.c): the traced path looks
# each event up there, and equal interned strings are found by identity, without comparing
# their text.
DNS: Final = intern("dns.resolve")
CONNECT_TCP: Final = intern("connection.connect_tcp")
REUSED: Final = intern("connection.reused")
START_TLS: Final = intern("connection.start_tls")
SEND: Final = intern("http11.send_request_headers")
"""From before the request head is written until the whole body has been written."""
HEAD: Final = intern("http11.receive_response_headers")
"""From the request sent until the response head is parsed (time to first byte)."""
BODY: Final = intern("http11.receive_response_body")
"""From the response head until the end of the body (info: ``bytes``)."""

# The events of every traced exchange, spelled once (not concatenated per request).
SEND_STARTED: Final = intern(SEND + ".started")
SEND_COMPLETE: Final = intern(SEND + ".complete")
HEAD_STARTED: Final = intern(HEAD + ".started")
HEAD_COMPLETE: Final = intern(HEAD + ".complete")
BODY_STARTED: Final = intern(BODY + ".started")
BODY_COMPLETE: Final = intern(BODY + ".complete")
