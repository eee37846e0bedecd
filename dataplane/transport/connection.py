"""One HTTP/1.1 connection to an upstream: an asyncio Protocol feeding an httptools parser.

A :class:`Connection` carries one exchange at a time. Each exchange gets a fresh
:class:`ResponseReader` (the parser's callback object), which buffers the response as it
arrives; the caller awaits it with :meth:`ResponseReader.wait`. When the parser sees the end of a
keep-alive response the connection goes straight back to its pool, even if the body has not been
consumed yet: the bytes already sit in the reader.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final, TypeAlias, cast

import httptools

from dataplane.transport.errors import UpstreamProtocolError, UpstreamReadError

if TYPE_CHECKING:
    from dataplane.transport.pool import ConnectionPool

__all__ = [
    "HIGH_WATER",
    "MAX_HEAD",
    "Connection",
    "Deadlines",
    "Origin",
    "ResponseReader",
    "wait_until_woken",
]

Origin: TypeAlias = tuple[bytes, str, int, bool]
"""Where a connection goes: (scheme, host, port, TLS verified)."""

HIGH_WATER: Final = 256 * 1024
"""Unconsumed response body bytes at which the connection stops reading from the socket."""

MAX_HEAD: Final = 64 * 1024
"""Bytes an upstream may send before its response head ends (llhttp sets no limit itself)."""

_NO_BODY_STATUS: Final = frozenset({204, 304})


# A future's methods through the type: ``waiter.done()`` on an asyncio future (which has a
# dict slot) is a method lookup CPython 3.11 does not specialize; these are module globals.
_future_done = asyncio.Future.done
_future_set_result = asyncio.Future.set_result


def _wake(waiter: asyncio.Future[bool] | None) -> None:
    if waiter is not None and not _future_done(waiter):
        _future_set_result(waiter, True)


class Deadlines:
    """The timeouts of every wait on one event loop, kept by one loop timer.

    A timer per wait (``call_later`` and ``cancel``) cost ~1.5 µs on uvloop, paid by every
    proxied request for its read timeout. Here a wait is a dict entry, and the one timer is
    armed for the earliest deadline: when it fires it ends the waits that are due and re-arms
    for the next. Waits with the same timeout end in the order they start, so in steady state
    a new wait never re-arms the timer.
    """

    __slots__ = ("_armed_at", "_loop", "_timer", "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[asyncio.Future[bool], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Deadlines:
        """The loop's instance."""
        deadlines = _BY_LOOP.get(loop)
        if deadlines is None:
            deadlines = _BY_LOOP[loop] = cls(loop)
        return deadlines

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, waiter: asyncio.Future[bool], seconds: float) -> None:
        """End ``waiter`` with False once ``seconds`` pass (unless it is done or discarded)."""
        deadline = self._loop.time() + seconds
        self._waiting[waiter] = deadline
        if deadline < self._armed_at:
            self._arm(deadline)

    def discard(self, waiter: asyncio.Future[bool]) -> None:
        """``waiter`` no longer needs its timeout."""
        self._waiting.pop(waiter, None)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._armed_at = math.inf
        # A loop timer may fire a little before its time (uvloop rounds to milliseconds).
        now = self._loop.time() + _TIMER_SLACK
        earliest = math.inf
        for waiter, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[waiter]
                if not waiter.done():
                    waiter.set_result(False)
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._arm(earliest)


_TIMER_SLACK: Final = 0.001
_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


async def wait_until_woken(
    deadlines: Deadlines, waiter: asyncio.Future[bool], seconds: float | None
) -> bool:
    """Await ``waiter``: True when woken, False when ``seconds`` passed first."""
    if seconds is None:
        return await waiter
    deadlines.add(waiter, seconds)
    try:
        return await waiter
    finally:
        deadlines.discard(waiter)


class Connection(asyncio.Protocol):
    """A TCP (or TLS) connection to one origin, owned by a pool."""

    __slots__ = (
        "_drain_waiter",
        "_read_paused",
        "closed",
        "deadlines",
        "done",
        "idle_since",
        "loop",
        "origin",
        "peer",
        "pool",
        "reader",
        "reused",
        "transport",
        "write_paused",
    )

    def __init__(
        self, origin: Origin, pool: ConnectionPool, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.origin = origin
        self.pool = pool
        self.loop = loop
        self.deadlines = Deadlines.of(loop)
        self.peer: tuple[str, int] = ("", 0)
        self.transport: asyncio.Transport | None = None
        self.reader: ResponseReader | None = None
        self.reused = False
        self.closed = False
        self.idle_since = 0.0
        self.done: asyncio.Future[None] = loop.create_future()
        self._read_paused = False
        self.write_paused = False
        """The socket's send buffer is full (:meth:`drain` waits). An attribute, not a
        property: the transport reads it on every request, and CPython 3.11 does not
        specialize reading a property."""
        self._drain_waiter: asyncio.Future[bool] | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        reader.feed(data)
        if reader.complete or reader.error is not None:
            self._exchange_done(reader)

    def eof_received(self) -> bool | None:
        self._close_state()  # out of the pool now; connection_lost tells the reader
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        reader = self.reader
        self.reader = None
        self._close_state()
        if reader is not None:
            reader.lost(exc)
        _wake(self._drain_waiter)
        self._gone()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self._drain_waiter)

    # used by the transport

    def begin(self, head_only: bool) -> ResponseReader:
        """Start an exchange: a new reader for the response to the request about to be sent."""
        reader = ResponseReader(self, head_only)
        self.reader = reader
        return reader

    def write(self, data: bytes) -> None:
        """Queue request bytes (the transport sends them as the socket allows)."""
        transport = self.transport
        if transport is not None and not self.closed:
            try:
                transport.write(data)
            except RuntimeError:  # uvloop: the handle closed under us; the reader hears of it
                self.abort()

    async def drain(self, seconds: float | None) -> bool:
        """Wait until the socket takes more request bytes: False after ``seconds``."""
        while self.write_paused and not self.closed:
            waiter: asyncio.Future[bool] = self.loop.create_future()
            self._drain_waiter = waiter
            try:
                if not await wait_until_woken(self.deadlines, waiter, seconds):
                    return False
            finally:
                self._drain_waiter = None
        return True

    def pause_reading(self) -> None:
        """The consumer is behind: stop reading from the socket (TCP pushes back upstream)."""
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """The consumer caught up: read from the socket again."""
        if self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        """Close the connection (it leaves the pool at once)."""
        self._close_state()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without flushing (errors, shutdown)."""
        self._close_state()
        if self.transport is not None:
            self.transport.abort()

    def discard(self) -> None:
        """Drop a connection that failed to open: the protocol may never hear connection_lost
        (a failed TLS handshake closes the socket behind its back)."""
        self.abort()
        self._gone()

    def _gone(self) -> None:
        self.pool.lost(self)
        if not self.done.done():
            self.done.set_result(None)

    def _close_state(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.closed(self)

    def _exchange_done(self, reader: ResponseReader) -> None:
        self.reader = None
        # The parser holds the reader's callbacks and the reader the parser: unlinked now (no
        # more bytes reach this reader), both go with their last reference instead of waiting
        # for the cycle collector.
        reader.parser = None
        if reader.error is not None:
            self.abort()
        elif reader.keep_alive and reader.request_sent and not self.closed:
            if self._read_paused:
                self.resume_reading()
            self.pool.release(self)
        else:
            self.close()


class ResponseReader:
    """Parser callbacks for one response; buffers its head and body until the caller takes them."""

    __slots__ = (
        "_informational",
        "_waiter",
        "body_bytes",
        "buffered",
        "chunks",
        "complete",
        "conn",
        "error",
        "head_only",
        "headers",
        "headers_done",
        "http_version",
        "keep_alive",
        "parser",
        "reason",
        "received",
        "request_sent",
        "status",
    )

    def __init__(self, conn: Connection, head_only: bool) -> None:
        self.conn = conn
        self.head_only = head_only
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.http_version = b"HTTP/1.1"
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.request_sent = False
        self.received = 0  # bytes
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.body_bytes = 0
        self.error: UpstreamProtocolError | UpstreamReadError | None = None
        self._informational = False
        self._waiter: asyncio.Future[bool] | None = None

    # fed by the connection

    def feed(self, data: bytes) -> None:
        """Parse bytes from the socket."""
        parser = self.parser
        if parser is None:  # the response already ended
            return
        self.received += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # 101 Switching Protocols: the response ends with its head; no more HTTP here
            self.keep_alive = False
            self.complete = True
        except httptools.HttpParserError as exc:
            if self.complete:
                self.keep_alive = False  # junk after a complete response
            else:
                self.error = UpstreamProtocolError(f"invalid HTTP response from upstream: {exc}")
        if not self.headers_done and self.received > MAX_HEAD and self.error is None:
            self.error = UpstreamProtocolError(f"response head larger than {MAX_HEAD} bytes")
        if self.buffered > HIGH_WATER and not self.complete:
            self.conn.pause_reading()
        _wake(self._waiter)

    def lost(self, exc: BaseException | None) -> None:
        """The connection closed under this response."""
        if self.complete or self.error is not None:
            return
        if exc is None and self.headers_done and self._close_delimited():
            self.complete = True  # the body ran until the connection closed
        elif isinstance(exc, ConnectionResetError | BrokenPipeError):
            self.error = UpstreamReadError(
                f"upstream reset the connection: {exc}", "connection_reset"
            )
        elif exc is not None:
            self.error = UpstreamReadError(f"reading from upstream failed: {exc}")
        elif not self.received:
            self.error = UpstreamProtocolError(
                "upstream closed the connection without sending a response", "connection_closed"
            )
        else:
            self.error = UpstreamProtocolError(
                "upstream closed the connection before the end of the response",
                "connection_closed",
            )
        _wake(self._waiter)

    # httptools callbacks

    def on_message_begin(self) -> None:
        """A response (or junk after the one we wanted) starts."""
        if self.complete:
            self.keep_alive = False

    def on_status(self, status: bytes) -> None:
        """Part of the reason phrase."""
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header, as received."""
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The head is parsed: wake the caller (time to first byte)."""
        parser = self.parser
        assert parser is not None  # called by it
        status = parser.get_status_code()
        if status < 200 and status != 101:  # interim (100 Continue, 103 Early Hints): skip
            self._informational = True
            self.headers = []
            self.reason = b""
            return
        self.status = status
        if parser.get_http_version() == "1.0":
            self.http_version = b"HTTP/1.0"
        self.headers_done = True
        if self.head_only:
            # llhttp does not know the request was HEAD; a Content-Length here describes nothing
            self.keep_alive = self._head_keep_alive()
            self.complete = True

    def on_body(self, body: bytes) -> None:
        """A piece of the body."""
        if self.complete:
            self.keep_alive = False  # a body after HEAD: the connection is out of step
            return
        self.chunks.append(body)
        self.buffered += len(body)
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        """The response ended (by Content-Length, last chunk, or no body)."""
        if self._informational:
            self._informational = False
            return
        if not self.complete:
            assert self.parser is not None  # called by it
            self.keep_alive = self.parser.should_keep_alive()
            self.complete = True

    # used by the transport and the body stream

    def wait(self, seconds: float | None) -> Awaitable[bool]:
        """Await news (head, body, end, error): False when ``seconds`` passed first.

        A plain function returning the wait (one coroutine frame fewer on the hot path); a
        waiter left behind after a timeout is done, so waking it later does nothing.
        """
        conn = self.conn
        waiter: asyncio.Future[bool] = conn.loop.create_future()
        self._waiter = waiter
        return wait_until_woken(conn.deadlines, waiter, seconds)

    def wake(self) -> None:
        """Wake whoever waits on this reader (the upload finished or failed)."""
        _wake(self._waiter)

    def take(self) -> bytes:
        """Everything buffered of the body, as one piece."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if not self.complete and self.conn.reader is self:
            self.conn.resume_reading()
        return data

    def _close_delimited(self) -> bool:
        if self.status in _NO_BODY_STATUS or self.head_only:
            return False
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                return False
            if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                return False
        return True

    def _head_keep_alive(self) -> bool:
        for name, value in self.headers:
            if name.lower() == b"connection":
                tokens = [token.strip() for token in value.lower().split(b",")]
                if b"close" in tokens:
                    return False
                if b"keep-alive" in tokens:
                    return True
        return self.http_version == b"HTTP/1.1"
