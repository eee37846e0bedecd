"""uvicorn's httptools protocol with what a gateway needs on the client side.

- Each request is stamped when its first bytes were parsed: a root span starts at the first
  byte in, not when the ASGI task first runs (under load those are apart by however long the
  task waited for the event loop).
- A request head (request line and headers) over 64 KiB is answered ``431`` and the connection
  closed, whether it arrives in one piece or trickles in.
"""

from __future__ import annotations

import time
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEAD_BYTES", "RECEIVED_NS", "StampedHttpToolsProtocol"]

RECEIVED_NS: Final = "activetrace.received_ns"
# Request line and headers together (Envoy's default is 60 KiB; nginx's 4 x 8 KiB buffers).
# llhttp has no limit of its own: without this a client could make the node buffer anything.
MAX_HEAD_BYTES: Final = 64 * 1024
_TOO_LARGE_BODY: Final = b'{"message":"Request header fields too large"}'
_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)
_perf = time.perf_counter_ns


class StampedHttpToolsProtocol(HttpToolsProtocol):
    """Adds ``scope["activetrace.received_ns"]`` (``perf_counter_ns``) to every request, and
    answers 431 to a request whose head grows past :data:`MAX_HEAD_BYTES`."""

    _head_bytes = 0  # bytes received while the head is incomplete
    _in_head = True
    _parsed_head = 0  # bytes of the head the parser has handed over
    _too_large = False

    def _refuse(self) -> None:
        self._in_head = False
        self._too_large = True
        self.transport.write(_TOO_LARGE)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parse error; ours when the head was too large."""
        if self._too_large:
            if not self.transport.is_closing():
                self._refuse()
            return
        super().send_400_response(msg)

    def on_url(self, url: bytes) -> None:
        """Part of the request target."""
        self._parsed_head += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header; the head's size is checked as headers arrive in one chunk."""
        self._parsed_head += len(name) + len(value) + 4
        if self._parsed_head > MAX_HEAD_BYTES:
            self._too_large = True
            raise ValueError("request head too large")  # the parser stops; see send_400_response
        super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        """Bytes from the client; a head that keeps growing is cut off."""
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after parsing this chunk (a chunk that completes the head resets
        # the count, so a body arriving with its head does not count).
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self._too_large:
            self._refuse()

    def on_headers_complete(self) -> None:
        """The head is complete: the body is not counted against the head's limit."""
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request ended: a keep-alive connection's next head is counted afresh."""
        super().on_message_complete()
        self._in_head = True

    def on_message_begin(self) -> None:
        """The parser saw the start of a request."""
        self._parsed_head = 0
        super().on_message_begin()
        self.scope[RECEIVED_NS] = _perf()  # type: ignore[typeddict-unknown-key]
