"""The node's HTTP/1.1 server: an asyncio protocol with httptools, serving the proxy's ASGI app.

uvicorn served the proxy port before. On this machine its per-request work (ASGI cycle
objects, header validation by regular expression, a write per message) cost about a fifth of
the node's time per proxied request (docs/benchmarks.md). This server does what the proxy
needs and no more:

- HTTP/1.1 and 1.0 with keep-alive and pipelining (requests on one connection are answered
  in order, one at a time); ``Expect: 100-continue``; chunked request and response bodies.
- Each request is stamped (``scope["activetrace.received_ns"]``, ``perf_counter_ns``) when its
  first bytes are parsed, so a root span starts at the first byte in.
- A request head over :data:`MAX_HEAD_BYTES` is answered ``431`` and the connection closed,
  whether it arrives in one piece or trickles in (llhttp has no limit of its own).
- Malformed requests get a JSON ``400`` and a close.
- Backpressure both ways: reading pauses while a request body waits unread past 64 KiB, and
  ``send`` waits while the client's socket buffer is full.
- The response head is written together with the first body bytes when the app sends both in
  one step (one system call instead of two); otherwise it goes out on the next loop turn.
- Idle keep-alive connections close after ``keep_alive_timeout``; a connection whose request
  head stays incomplete closes after ``header_timeout`` (nginx's client_header_timeout).
- A client that sends nothing of a request body the app waits for during ``body_timeout`` gets
  ``408`` and a close (nginx's client_body_timeout); one whose socket buffer stays full for
  ``send_timeout`` is disconnected (nginx's send_timeout). Both are checked by the
  once-a-second sweep, so they cost requests nothing.
- Shutdown stops accepting, closes idle connections and waits up to ``shutdown_timeout`` for
  requests in flight.

The ASGI subset is what the proxy uses: ``http`` scopes only (no lifespan, no WebSocket; an
``Upgrade`` request is served as plain HTTP and its connection closed after the response).
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final
from urllib.parse import unquote

import httptools

from dataplane.headers import raw_header
from dataplane.http1 import header_block

__all__ = [
    "MAX_HEAD_BYTES",
    "OWN_TASK",
    "RECEIVED_NS",
    "RESPOND",
    "ClientGone",
    "HttpServer",
    "Respond",
]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

RECEIVED_NS: Final = "activetrace.received_ns"
RESPOND: Final = "activetrace.respond"
"""Scope key of the request's :meth:`Cycle.respond`: a whole response in one call, for an app
that has all of it (the proxy's buffered upstream responses and its own answers)."""
OWN_TASK: Final = "activetrace.own_task"
"""Scope key, True: the app runs this request in a task of its own (the server starts one per
request), so what the request sets in its context ends with it and needs no reset."""

Respond = Callable[[int, Iterable[tuple[bytes, bytes]], bytes], bool]
# Request line and headers together (Envoy's default is 60 KiB; nginx's 4 x 8 KiB buffers).
MAX_HEAD_BYTES: Final = 64 * 1024
# Unread request body kept per connection before reading pauses.
BODY_HIGH_WATER: Final = 64 * 1024
# Requests a client may pipeline ahead of their answers (more closes the connection).
MAX_PIPELINED: Final = 64

_perf = time.perf_counter_ns
_ASGI: Final = {"version": "3.0", "spec_version": "2.3"}
_STATUS_LINES: Final = {
    status.value: b"HTTP/1.1 %d %b\r\n" % (status.value, status.phrase.encode("ascii"))
    for status in http.HTTPStatus
}
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED_HEADER: Final = b"transfer-encoding: chunked\r\n"
_CLOSE_HEADER: Final = b"connection: close\r\n"
_LAST_CHUNK: Final = b"0\r\n\r\n"
_NO_BODY_STATUS: Final = frozenset({204, 304})


def _error_response(status: int, message: str) -> bytes:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return (
        _STATUS_LINES[status]
        + b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        + _CLOSE_HEADER
        + b"\r\n"
        + body
    )


_BAD_REQUEST: Final = _error_response(400, "Bad request: the request is not valid HTTP/1.1")
_TOO_LARGE: Final = _error_response(431, "Request header fields too large")
_INTERNAL_ERROR: Final = _error_response(500, "An unexpected error occurred")
_BODY_TIMEOUT: Final = _error_response(408, "Request timeout: the request body stopped arriving")


class UnreadableBody(Exception):
    """An Upgrade or CONNECT request announced a body the parser will not deliver."""


class TooManyPipelined(Exception):
    """A client pipelined more requests than :data:`MAX_PIPELINED` ahead of the answers."""


class ClientGone(OSError):
    """Raised by ``send`` when the client left while its response was streaming, so the app
    stops producing it (an endless upstream stream would otherwise run on)."""


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class HeadTooLarge(Exception):
    """Raised from the parser callback that takes the head past the limit (httptools wraps it
    in ``HttpParserCallbackError``; ``parsed_head`` tells the two apart)."""


class HttpServer:
    """Serves one ASGI app on ``host:port`` until :attr:`should_exit` is set.

    ``should_exit`` / ``force_exit`` have uvicorn's meaning, so one signal handler can stop this
    server and uvicorn servers alike (:func:`dataplane.serving.stop_on_signals`).
    """

    def __init__(
        self,
        app: App,
        host: str,
        port: int,
        *,
        keep_alive_timeout: float = 5.0,
        header_timeout: float = 60.0,
        body_timeout: float = 60.0,
        send_timeout: float = 60.0,
        shutdown_timeout: float = 30.0,
        backlog: int = 2048,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.keep_alive_timeout = keep_alive_timeout
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.send_timeout = send_timeout
        self.shutdown_timeout = shutdown_timeout
        self.backlog = backlog
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.force_exit = False
        self.exiting = False  # what should_exit reads: a plain attribute for the request path
        self._exit = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def should_exit(self) -> bool:
        """True once the server has been asked to stop (setting it False does nothing)."""
        return self.exiting

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self.exiting = True
            self._exit.set()

    async def serve(self, sock: socket.socket | None = None) -> None:
        """Accept connections until asked to exit, then shut down gracefully.

        ``sock``: an already listening socket to serve instead of binding ``host:port``.
        """
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(
                lambda: HttpConnection(self, loop), sock=sock, backlog=self.backlog
            )
        else:
            self._server = await loop.create_server(
                lambda: HttpConnection(self, loop),
                self.host,
                self.port,
                backlog=self.backlog,
                reuse_address=True,
            )
        sweeper = asyncio.create_task(self._sweep_idle(loop))
        try:
            await self._exit.wait()
        finally:
            sweeper.cancel()
            await self._shutdown()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for conn in list(self.connections):
            conn.close_if_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        # Waits in short slices so a second signal (force_exit) cuts the wait short.
        while self.tasks and not self.force_exit and loop.time() < deadline:
            await asyncio.wait(set(self.tasks), timeout=min(0.2, deadline - loop.time()))
        if self.tasks:
            log.warning("%d requests still running at shutdown; cancelled", len(self.tasks))
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        for conn in list(self.connections):
            conn.transport.close()

    async def _sweep_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once a second: close connections idle or stalled past their timeout (no timer per
        request)."""
        while True:
            await asyncio.sleep(1.0)
            self.sweep(loop.time())

    def sweep(self, now: float) -> None:
        """Close the connections whose client stalled past a timeout at loop time ``now``."""
        for conn in list(self.connections):
            active = conn.active
            if active is not None:
                if conn.write_paused and now - conn.write_paused_at > self.send_timeout:
                    log.info("client %s took no response data in time", conn.client)
                    conn.transport.abort()  # its buffer is full: a close would wait on it
                elif active.waiter is not None and now - conn.last_active > self.body_timeout:
                    active.body_timed_out()
                continue
            if conn.head_bytes:  # a head in progress: timed from its first byte (slowloris)
                if now - conn.head_started > self.header_timeout:
                    conn.transport.close()
            elif now - conn.last_active > self.keep_alive_timeout:
                conn.transport.close()


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests and runs one ASGI cycle per request, in order."""

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connect
        self.client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | None = None
        self.active: Cycle | None = None  # the cycle whose app runs
        self.parsing: Cycle | None = None  # the cycle whose body is being parsed
        self.pipeline: deque[Cycle] = deque()
        self.last_active = loop.time()
        self.head_started = self.last_active  # loop time the current head began
        self.head_bytes = 0  # bytes received while a head is incomplete
        self.parsed_head = 0  # bytes of the current head the parser has handed over
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.received_ns = 0
        self.read_paused = False
        self.write_paused = False
        self.write_paused_at = 0.0  # loop time the client's buffer filled
        self.drain_waiter: asyncio.Future[None] | None = None
        self.closing = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A client connected."""
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.sockname = (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) else None
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """The client went away (or we closed): cycles see a disconnect."""
        self.closing = True
        self.server.connections.discard(self)
        for cycle in (self.active, self.parsing, *self.pipeline):
            if cycle is not None:
                cycle.disconnected = True
                cycle.wake()
        self.pipeline.clear()
        self._wake_writer()

    def pause_writing(self) -> None:
        """The client's socket buffer is full."""
        self.write_paused = True
        self.write_paused_at = self.loop.time()

    def resume_writing(self) -> None:
        """The client's socket buffer drained."""
        self.write_paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.drain_waiter = None

    async def drain(self) -> None:
        """Wait until the client takes more data (or is gone)."""
        if self.write_paused and not self.closing:
            waiter = self.drain_waiter
            if waiter is None:
                waiter = self.drain_waiter = self.loop.create_future()
            await waiter

    def data_received(self, data: bytes) -> None:
        """Bytes from the client."""
        self.last_active = self.loop.time()
        if self.parsing is None:
            if not self.head_bytes:
                self.head_started = self.last_active
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Served as plain HTTP (the proxy drops Upgrade, a hop-by-hop header); what follows
            # the head is not HTTP, so nothing more is read and the connection closes after
            # the response (on_headers_complete saw the upgrade).
            self.read_paused = True
            self.transport.pause_reading()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if self.parsed_head > MAX_HEAD_BYTES:
                self._refuse(_TOO_LARGE)
            elif isinstance(cause, TooManyPipelined):
                self.transport.close()  # the answers already queued are lost with it
            else:
                self._refuse(_BAD_REQUEST)
            return
        # Still in a head after this chunk (a chunk that completes the head resets the count,
        # so a body arriving with its head does not count against the head's limit).
        if self.parsing is None and self.head_bytes > MAX_HEAD_BYTES:
            self._refuse(_TOO_LARGE)

    def _refuse(self, answer: bytes) -> None:
        if self.transport.is_closing():
            return
        if self.active is None:
            self.transport.write(answer)
        self.transport.close()

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """The parser saw the start of a request."""
        self.received_ns = _perf()
        self.url = b""
        self.headers = []
        self.parsed_head = 0

    def on_url(self, url: bytes) -> None:
        """Part of the request target."""
        self.url += url
        self.parsed_head += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header line."""
        self.parsed_head += len(name) + len(value) + 4
        if self.parsed_head > MAX_HEAD_BYTES:
            raise HeadTooLarge
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        """The head is complete: start (or queue) the request's cycle."""
        self.head_bytes = 0
        parser = self.parser
        if self.parsed_head > MAX_HEAD_BYTES:  # a long target with few headers, in one read
            raise HeadTooLarge
        if parser.should_upgrade() and _has_body(self.headers):
            # llhttp does not read the body of an Upgrade or CONNECT request: forwarding its
            # Content-Length without those bytes would desynchronise the upstream connection.
            raise UnreadableBody
        if len(self.pipeline) >= MAX_PIPELINED:
            raise TooManyPipelined
        url = self.url
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
        else:  # absolute-form or authority-form target
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        path = raw_path.decode("latin-1")
        scope: Scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": parser.get_http_version(),
            "server": self.sockname,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": unquote(path) if "%" in path else path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": self.headers,
            RECEIVED_NS: self.received_ns,
            OWN_TASK: True,
        }
        keep_alive = parser.should_keep_alive() and not parser.should_upgrade()
        cycle = Cycle(self, scope, keep_alive)
        self.parsing = cycle
        if self.active is None:
            self._start(cycle)
        else:
            self.pipeline.append(cycle)
            if not self.read_paused:  # one request ahead is enough
                self.read_paused = True
                self.transport.pause_reading()

    def on_body(self, body: bytes) -> None:
        """Request body bytes."""
        cycle = self.parsing
        if cycle is None or cycle.response_complete:
            return
        cycle.body.append(body)
        cycle.buffered += len(body)
        if cycle.buffered > BODY_HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        """The request (head and body) has been read."""
        cycle = self.parsing
        self.parsing = None
        if cycle is not None:
            cycle.more_body = False
            cycle.wake()

    # -- cycles -----------------------------------------------------------------------------

    def _start(self, cycle: Cycle) -> None:
        self.active = cycle
        task = cycle.task = self.loop.create_task(cycle.run(self.server.app))
        self.server.tasks.add(task)  # Cycle.run removes it as it ends

    def response_complete(self, cycle: Cycle) -> None:
        """``cycle``'s response is on the wire: close, or go on with the next request."""
        self.last_active = self.loop.time()
        if not cycle.keep_alive or self.server.exiting:
            self.transport.close()
            return
        # An app may answer before reading the whole body (a 413, a 401): the rest is read
        # and dropped (``on_body``), so the client can read the answer and reuse the connection.
        self.active = None
        if self.pipeline:
            self._start(self.pipeline.popleft())
        if self.read_paused and not self.pipeline:
            self.read_paused = False
            self.transport.resume_reading()

    def resume_body(self) -> None:
        """The app took the buffered body: read more."""
        if self.read_paused and not self.pipeline:
            self.read_paused = False
            self.transport.resume_reading()

    def close_if_idle(self) -> None:
        """At shutdown: a connection between requests closes now."""
        if self.active is None:
            self.transport.close()


class Cycle:
    """One request and its response: the ASGI ``receive`` and ``send``."""

    __slots__ = (
        "body",
        "buffered",
        "chunked",
        "conn",
        "continue_sent",
        "disconnected",
        "expected",
        "head",
        "head_method",
        "keep_alive",
        "more_body",
        "no_body",
        "response_complete",
        "response_started",
        "scope",
        "task",
        "waiter",
    )

    def __init__(self, conn: HttpConnection, scope: Scope, keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.head_method = scope["method"] == "HEAD"
        self.no_body = self.head_method  # also 1xx, 204 and 304, known at the response start
        self.body: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.continue_sent = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.expected: int | None = None  # content-length bytes still to send
        self.head: bytes | None = None  # written with the first body bytes
        self.task: asyncio.Task[None] | None = None
        scope[RESPOND] = self.respond

    def wake(self) -> None:
        """Body bytes arrived, the body ended, or the client went away."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def run(self, app: App) -> None:
        """Run the app for this request; answer 500 if it fails before responding."""
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError | ClientGone):
                log.exception("request failed: %s %s", self.scope["method"], self.scope["path"])
            self._abort()
            if not isinstance(exc, Exception):
                raise
        else:
            if not self.response_complete:
                if self.response_started and not self.disconnected:
                    log.error("app returned before its response was complete")
                self._abort()
        finally:
            # The scope refers back to this cycle (its respond): unlinked here, the request's
            # objects go with their last reference instead of waiting for the cycle collector.
            self.scope.pop(RESPOND, None)
            if self.task is not None:
                self.conn.server.tasks.discard(self.task)

    def _abort(self) -> None:
        conn = self.conn
        if conn.transport.is_closing() or self.response_complete:
            return  # a finished response: the connection may serve the next request already
        if not self.response_started and not self.disconnected:
            conn.transport.write(_INTERNAL_ERROR)
        self._flush_head()  # a started response keeps its head; the client sees it cut short
        conn.transport.close()

    def body_timed_out(self) -> None:
        """The client sent none of the body the app waits for in time: 408 (if nothing was
        answered yet) and close; the app's ``receive`` sees a disconnect."""
        conn = self.conn
        log.info("client %s sent no request body data in time", conn.client)
        if not self.response_started and not conn.transport.is_closing():
            conn.transport.write(_BODY_TIMEOUT)
        self.disconnected = True
        self.wake()
        conn.transport.close()

    async def receive(self) -> Message:
        """The next piece of the request body, or ``http.disconnect``."""
        conn = self.conn
        if not self.continue_sent and self.more_body and not self.body:
            self.continue_sent = True
            if (
                not self.disconnected
                and not self.response_started
                and raw_header(self.scope["headers"], b"expect") is not None
            ):
                conn.transport.write(_CONTINUE)
        while self.more_body and not self.body and not self.disconnected:
            waiter = self.waiter = conn.loop.create_future()
            await waiter
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body = []
        self.buffered = 0
        conn.resume_body()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Message) -> None:
        """Write the response head or a piece of its body."""
        conn = self.conn
        if conn.write_paused:
            await conn.drain()
        if self.disconnected:
            if self.response_started and not self.response_complete:
                raise ClientGone("the client closed the connection during the response")
            return  # nothing started: the answer is dropped quietly
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self._start_response(message["status"], message.get("headers") or ())
            self.conn.loop.call_soon(self._flush_head)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {kind!r}")
        if self.response_complete:
            raise RuntimeError("response already complete")
        self._write_body(message.get("body", b""), message.get("more_body", False))

    def respond(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> bool:
        """The whole response (head and body) in one write, without ASGI messages: what the
        ``send`` of a start and of its one body would do. False, with nothing done, when the
        client is not taking data or is gone, or a response has started: ``send`` then."""
        if self.response_started or self.disconnected or self.conn.write_paused:
            return False
        self._start_response(status, headers)
        self._write_body(body, False)
        return True

    def _write_body(self, body: bytes, more: bool) -> None:
        conn = self.conn
        if self.no_body:
            data = b""
        elif self.chunked:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                data += _LAST_CHUNK
        else:
            data = body
            if self.expected is not None:
                self.expected -= len(body)
                if self.expected < 0:
                    raise RuntimeError("response body longer than its content-length")
        head = self.head
        if head is not None:
            self.head = None
            data = head + data if data else head
        if data:
            conn.transport.write(data)
        if not more:
            if self.expected and not self.no_body:
                raise RuntimeError("response body shorter than its content-length")
            self.response_complete = True
            conn.response_complete(self)

    def _start_response(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Build the head (written with the first body bytes, or by :meth:`_flush_head`)."""
        self.response_started = True
        try:
            block, length, chunked, close = header_block(
                _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status, headers
            )
        except ValueError:  # a CR or LF inside a name or value would split the response
            self.response_started = False
            raise RuntimeError("a response header name or value contains CR or LF") from None
        expected = int(length) if length is not None else None
        if close or self.conn.server.exiting:
            self.keep_alive = False
        no_body = self.head_method or status in _NO_BODY_STATUS or status < 200
        # Expect: 100-continue answered without reading the body: the client may never send
        # it, so what follows on the connection is not known to be the next request.
        if (
            self.more_body
            and not self.continue_sent
            and raw_header(self.scope["headers"], b"expect")
        ):
            self.keep_alive = False
        if expected is None and not chunked and not no_body:
            if self.scope["http_version"] == "1.0":
                self.keep_alive = False  # HTTP/1.0 has no chunked coding: the close ends it
            else:
                chunked = True
                block += _CHUNKED_HEADER
        if not self.keep_alive and not close:
            block += _CLOSE_HEADER
        head = block + b"\r\n"
        self.chunked = chunked and not no_body
        self.no_body = no_body
        self.expected = None if chunked or no_body else expected
        self.head = head

    def _flush_head(self) -> None:
        """The app did not send body bytes in the same step: the head goes out alone."""
        head = self.head
        if head is not None and not self.disconnected:
            self.head = None
            self.conn.transport.write(head)
