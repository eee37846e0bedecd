"""The data plane's upstream HTTP/1.1 transport, behind httpx's transport interface."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, Coroutine, Iterable, Mapping
from typing import Any, Final

import httpx

from dataplane.transport.body import ResponseStream
from dataplane.transport.connection import Connection, Origin, ResponseReader
from dataplane.transport.dns import Address, Resolver, ip_literal
from dataplane.transport.errors import (
    UpstreamConnectError,
    UpstreamProtocolError,
    connect_error,
    error_type,
)
from dataplane.transport.events import (
    BODY_STARTED,
    CONNECT_TCP,
    DNS,
    HEAD,
    HEAD_COMPLETE,
    HEAD_STARTED,
    NO_INFO,
    REUSED,
    SEND,
    SEND_COMPLETE,
    SEND_STARTED,
    START_TLS,
    Trace,
)
from dataplane.transport.pool import ConnectionPool
from dataplane.transport.request import RequestHead, encode_head, request_head
from dataplane.transport.tls import TlsContexts, tls_version
from dataplane.transport.upload import Upload

__all__ = ["UpstreamResponse", "UpstreamTransport"]

_NO_TIMEOUTS: Final[Mapping[str, float | None]] = {}
_DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}
_SCHEMES: Final = {"http": b"http", "https": b"https"}
# RFC 9112 §9.3.1: a proxy must not retry non-idempotent requests automatically
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_STALE_KINDS: Final = frozenset({"connection_closed", "connection_reset"})


class _StaleConnection(Exception):
    """A reused connection failed before any response byte (the upstream closed it idle)."""

    def __init__(self, error: httpx.TransportError, *, sent: bool = True) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent


class UpstreamResponse(ResponseStream):
    """A response head and its body stream, as :meth:`UpstreamTransport.send` returns it.

    ``headers`` are the raw ``(name, value)`` pairs as received (names as the upstream wrote
    them). The response is its own body stream: iterate it for the body and ``await aclose()``
    when done. One object per response, not two: making an object of a Python class costs
    CPython 3.11 more than the fields it stores.
    """

    __slots__ = ("headers", "http_version", "peer", "reason", "reused", "status")

    def __init__(
        self,
        reader: ResponseReader,
        timeout: float | None,
        trace: Trace | None,
        upload: Upload | None,
        peer: Any,
        reused: bool,
    ) -> None:
        _init_stream(self, reader, timeout, trace, upload)
        self.status = reader.status
        self.headers = reader.headers
        self.reason = reader.reason
        self.http_version = reader.http_version
        self.peer = peer
        self.reused = reused


_init_stream = ResponseStream.__init__
"""As a global: reading an attribute of a class is not specialized by CPython 3.11."""


class UpstreamTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 to upstreams over asyncio protocols and httptools, with keep-alive pooling.

    Request extensions read: ``timeout`` (connect/read/write/pool seconds), ``tls_verify``
    (default True; SNI is always the URL's host) and ``trace`` (a callable taking
    ``(event, info)``, called synchronously for each phase). Responses carry the
    ``network_peer``, ``connection_reused``, ``http_version`` and ``reason_phrase`` extensions.

    A connection returns to the pool as soon as its response has ended on the wire with
    keep-alive (the body may still sit unread in the response stream); closing a response
    before its end closes the connection.
    """

    def __init__(
        self,
        *,
        max_idle_per_origin: int = 100,
        idle_timeout: float = 60.0,
        max_connections_per_origin: int | None = None,
        dns_ttl: float = 30.0,
        dns_negative_ttl: float = 2.0,
        cafile: str | os.PathLike[str] | None = None,
    ) -> None:
        self.pool = ConnectionPool(
            max_idle_per_origin=max_idle_per_origin,
            idle_timeout=idle_timeout,
            max_connections_per_origin=max_connections_per_origin,
        )
        self.resolver = Resolver(ttl=dns_ttl, negative_ttl=dns_negative_ttl)
        self.tls = TlsContexts(cafile)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return as soon as the response head arrived (body streams)."""
        extensions = request.extensions
        url = request.url
        scheme = url.raw_scheme
        port = url.port or _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        verify = scheme != b"https" or bool(extensions.get("tls_verify", True))
        head = request_head(request)
        response = await self._request(
            (scheme, url.raw_host.decode("ascii"), port, verify),
            request.method,
            head,
            request.stream,
            extensions.get("timeout") or _NO_TIMEOUTS,
            extensions.get("trace"),
        )
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=response,
            extensions={
                "http_version": response.http_version,
                "reason_phrase": response.reason,
                "network_peer": response.peer,
                "connection_reused": response.reused,
            },
        )

    def send(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        target: bytes,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes],
        *,
        timeouts: Mapping[str, float | None] = _NO_TIMEOUTS,
        tls_verify: bool = True,
        trace: Trace | None = None,
    ) -> Coroutine[Any, Any, UpstreamResponse]:
        """The same exchange as :meth:`handle_async_request`, without httpx's request and
        response objects (the proxy's path: it already has the parts, and building httpx's
        models would validate and copy each header again). Await the result.

        ``host`` is a lower-case name or IP literal; ``target`` the request target as sent;
        ``headers`` go out as given (``Host`` included). Errors are the same httpx exceptions;
        a header with CR or LF raises at the call. (A plain function returning the exchange's
        coroutine: one coroutine frame fewer to resume at each wake-up on the hot path.)
        """
        raw_scheme = _SCHEMES.get(scheme)
        if raw_scheme is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        verify = raw_scheme != b"https" or tls_verify
        known = body if isinstance(body, bytes) else None
        head = encode_head(method, target, headers, known)
        stream = None if known is not None else body
        origin = (raw_scheme, host, port, verify)
        return self._request(origin, method, head, stream, timeouts, trace)

    async def _request(
        self,
        origin: Origin,
        method: str,
        head: RequestHead,
        stream: Any,
        timeouts: Mapping[str, float | None],
        trace: Trace | None,
    ) -> UpstreamResponse:
        pool = self.pool
        conn = pool.take(origin)
        if conn is None and pool.max_connections_per_origin is not None:
            conn = await pool.checkout(origin, timeouts.get("pool"))  # may wait for a slot
        if conn is not None:
            try:
                return await self._exchange(conn, head, stream, timeouts, trace)
            except _StaleConnection as stale:
                replayable = head.body is not None and method in _IDEMPOTENT
                if stale.sent and not replayable:
                    raise stale.error from None
        conn = await self._connect(origin, timeouts, trace)
        try:
            return await self._exchange(conn, head, stream, timeouts, trace)
        except _StaleConnection as stale:  # cannot happen on a fresh connection; to be safe
            raise stale.error from None

    async def aclose(self) -> None:
        """Close all connections (the transport stays usable: later requests reconnect)."""
        await self.pool.aclose()

    async def _exchange(
        self,
        conn: Connection,
        head: RequestHead,
        stream: Any,
        timeouts: Mapping[str, float | None],
        trace: Trace | None,
    ) -> UpstreamResponse:
        if conn.closed:  # went away between the pool and here: nothing was sent
            gone = UpstreamProtocolError("upstream closed the connection", "connection_closed")
            raise _StaleConnection(gone, sent=False)
        if trace is not None and conn.reused:
            trace(REUSED, {"peer": conn.peer})
        reader = conn.begin(head.head_only)
        upload: Upload | None = None
        phase = SEND
        try:
            if trace is not None:
                trace(SEND_STARTED, NO_INFO)
            if head.body is not None:
                await self._send(conn, reader, head, timeouts.get("write"))
                phase = HEAD
                if trace is not None:
                    trace(SEND_COMPLETE, NO_INFO)
                    trace(HEAD_STARTED, NO_INFO)
            else:
                conn.write(head.data)
                upload = Upload(
                    conn,
                    reader,
                    stream,
                    chunked=head.chunked,
                    seconds=timeouts.get("write"),
                    trace=trace,
                )
                phase = ""  # the upload traces its own end
            # The wait for the head (inline: one coroutine frame fewer to resume at each
            # wake-up). It starts once the request is sent; while the body still uploads there
            # is no read timeout, since the upstream may wait for the whole body.
            seconds = timeouts.get("read")
            waiting = upload is None
            while not reader.headers_done:
                if upload is not None and upload.done and not waiting:
                    if upload.error is not None:
                        raise upload.error
                    waiting = True
                    if trace is not None:
                        trace(HEAD_STARTED, NO_INFO)
                failure = reader.error
                if failure is not None:
                    if conn.reused and not reader.received and failure.kind in _STALE_KINDS:
                        raise _StaleConnection(failure)
                    raise failure
                if not await reader.wait(seconds if waiting else None):
                    raise httpx.ReadTimeout(f"no response from upstream within {seconds}s")
            if not waiting and trace is not None:
                trace(HEAD_STARTED, NO_INFO)  # answered before the upload ended
        except BaseException as exc:
            if upload is not None:
                upload.cancel()
            if not reader.complete:
                conn.abort()
            if trace is not None:
                error = exc.error if isinstance(exc, _StaleConnection) else exc
                failed = phase or HEAD
                trace(failed + ".failed", {"error_type": error_type(error), "error": str(error)})
            raise
        if trace is not None:
            trace(HEAD_COMPLETE, NO_INFO)  # (the status is on the response; no dict made)
            trace(BODY_STARTED, NO_INFO)
        return UpstreamResponse(reader, timeouts.get("read"), trace, upload, conn.peer, conn.reused)

    async def _send(
        self, conn: Connection, reader: ResponseReader, head: RequestHead, seconds: float | None
    ) -> None:
        body = head.body
        assert body is not None
        if len(body) < 65536:
            conn.write(head.data + body)
        else:
            conn.write(head.data)
            conn.write(body)
        reader.request_sent = True
        if conn.write_paused and not await conn.drain(seconds):
            raise httpx.WriteTimeout(f"upstream took no request data for {seconds}s")

    async def _connect(
        self,
        origin: Origin,
        timeouts: Mapping[str, float | None],
        trace: Trace | None,
    ) -> Connection:
        scheme, host, port, verify = origin
        loop = asyncio.get_running_loop()
        conn = Connection(origin, self.pool, loop)
        self.pool.opened(conn)  # before any await: takes the slot checkout found free
        phase = ""
        seconds = timeouts.get("connect")
        deadline = None if seconds is None else loop.time() + seconds
        try:
            async with asyncio.timeout_at(deadline):
                literal = ip_literal(host)
                if literal is None:
                    phase = DNS
                    addresses = await self._resolve(host, trace)
                else:
                    addresses = [literal]
                phase = CONNECT_TCP
                await self._connect_tcp(conn, addresses, port, deadline, trace)
                if scheme == b"https":
                    phase = START_TLS
                    await self._start_tls(conn, host, verify, trace)
        except BaseException as exc:
            conn.discard()
            if isinstance(exc, asyncio.CancelledError):
                raise
            error = connect_error(exc, f"{host}:{port}")
            if phase == START_TLS and error.kind == "connect_error":
                error.kind = "tls_error"
            if trace is not None and phase:
                trace(phase + ".failed", {"error_type": error.kind, "error": str(error)})
            raise error from exc
        return conn

    async def _resolve(self, host: str, trace: Trace | None) -> list[Address]:
        if trace is not None:
            trace(DNS + ".started", {"host": host})
        addresses, cache_hit = await self.resolver.resolve(host)
        if trace is not None:
            answers = [ip for _, ip in addresses]
            trace(DNS + ".complete", {"host": host, "cache_hit": cache_hit, "answers": answers})
        return addresses

    async def _connect_tcp(
        self,
        conn: Connection,
        addresses: list[Address],
        port: int,
        deadline: float | None,
        trace: Trace | None,
    ) -> None:
        """Try the addresses in order; each but the last gets an equal share of the time left,
        so one that drops packets cannot eat the whole connect timeout."""
        loop = conn.loop
        if trace is not None:
            trace(CONNECT_TCP + ".started", {"host": conn.origin[1], "port": port})
        failure: OSError | None = None
        for index, (family, ip) in enumerate(addresses):
            left = len(addresses) - index
            share = None  # the last address runs to the connect deadline itself
            if deadline is not None and left > 1:
                share = loop.time() + (deadline - loop.time()) / left
            try:
                async with asyncio.timeout_at(share):
                    await loop.create_connection(lambda: conn, ip, port, family=family)
            except OSError as exc:  # refused, unreachable, or this address's share ran out
                failure = exc
                continue
            conn.peer = (ip, port)
            if trace is not None:
                trace(CONNECT_TCP + ".complete", {"peer": conn.peer})
            return
        assert failure is not None
        raise failure

    async def _start_tls(
        self, conn: Connection, server_name: str, verify: bool, trace: Trace | None
    ) -> None:
        if trace is not None:
            trace(START_TLS + ".started", {"server_name": server_name})
        transport = conn.transport
        assert transport is not None
        try:
            tls = await conn.loop.start_tls(
                transport, conn, self.tls.get(verify), server_hostname=server_name
            )
        except OSError as exc:
            raise UpstreamConnectError(
                f"TLS handshake with {server_name} failed: {exc}", "tls_error"
            ) from exc
        if tls is None:
            raise UpstreamConnectError(f"TLS handshake with {server_name} failed", "tls_error")
        conn.transport = tls
        if trace is not None:
            version = tls_version(tls.get_extra_info("ssl_object"))
            trace(
                START_TLS + ".complete",
                {"server_name": server_name, "tls_version": version},
            )
