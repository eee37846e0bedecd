"""UpstreamTransport against real servers on loopback (asyncio's loop and uvloop)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from dataplane.transport import (
    UpstreamConnectError,
    UpstreamTransport,
    error_type,
)
from dataplane.transport.events import NO_INFO
from tests.conftest import Pki, free_port
from tests.dataplane.transport.conftest import Events, ReceivedRequest, Reply, Upstream, ok

TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def make_request(
    method: str,
    url: str,
    *,
    trace: Events | None = None,
    timeouts: dict[str, float] | None = None,
    **kwargs: Any,
) -> httpx.Request:
    """A request as the proxy builds it: timeouts (and a trace) in the extensions."""
    extensions: dict[str, Any] = {"timeout": timeouts or TIMEOUTS}
    if trace is not None:
        extensions["trace"] = trace
    return httpx.Request(method, url, extensions=extensions, **kwargs)


async def fetch(
    transport: UpstreamTransport, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, bytes]:
    """Send, read the whole body, close the response."""
    response = await transport.handle_async_request(make_request(method, url, **kwargs))
    try:
        body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
    finally:
        await response.aclose()
    return response, body


class AsyncBody(httpx.AsyncByteStream):
    """A streamed request body."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def reply_with(raw: bytes, *, close: bool = False) -> Reply:
    """A reply writing ``raw`` bytes (then closing the connection when told)."""

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        writer.write(raw)
        return False if close else None

    return reply


# keep-alive and framing


async def test_keep_alive_reuses_one_connection(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    first, first_body = await fetch(transport, "GET", upstream.url + "/a?x=1")
    second, second_body = await fetch(transport, "GET", upstream.url + "/b")

    assert (first.status_code, first_body) == (200, b"GET /a?x=1")
    assert second_body == b"GET /b"
    assert first.extensions["connection_reused"] is False
    assert second.extensions["connection_reused"] is True
    assert second.extensions["network_peer"] == ("127.0.0.1", upstream.port)
    assert second.extensions["http_version"] == b"HTTP/1.1"
    assert second.extensions["reason_phrase"] == b"OK"
    assert upstream.connections == 1


async def test_headers_sent_as_given_and_returned_raw_in_order(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    upstream.reply = reply_with(
        b"HTTP/1.1 200 Fine\r\nSet-Cookie: a=1\r\nX-Thing: one\r\nset-cookie: b=2\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    headers = [(b"Host", b"example.test"), (b"X-Forwarded-For", b"10.0.0.1"), (b"X-Dup", b"1")]
    headers.append((b"X-Dup", b"2"))
    response, _ = await fetch(transport, "GET", upstream.url + "/", headers=headers)

    seen = upstream.requests[0].headers
    assert seen == headers
    assert response.headers.raw == [
        (b"Set-Cookie", b"a=1"),
        (b"X-Thing", b"one"),
        (b"set-cookie", b"b=2"),
        (b"Content-Length", b"2"),
    ]
    assert response.reason_phrase == "Fine"


async def test_known_body_is_sent_with_content_length(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    await fetch(transport, "POST", upstream.url + "/", content=b"hello")

    request = upstream.requests[0]
    assert (request.body, request.header(b"content-length")) == (b"hello", b"5")
    assert request.header(b"transfer-encoding") is None


async def test_streamed_body_is_sent_chunked(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    stream = AsyncBody([b"one,", b"", b"two,", b"three"])
    await fetch(transport, "POST", upstream.url + "/", stream=stream)

    request = upstream.requests[0]
    assert request.body == b"one,two,three"
    assert request.header(b"transfer-encoding") == b"chunked"
    assert request.header(b"content-length") is None


async def test_streamed_body_with_a_length_is_sent_as_is(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    stream = AsyncBody([b"12345", b"67890"])
    headers = {"Content-Length": "10"}
    await fetch(transport, "PUT", upstream.url + "/", stream=stream, headers=headers)
    second, _ = await fetch(transport, "GET", upstream.url + "/")

    request = upstream.requests[0]
    assert (request.body, request.header(b"transfer-encoding")) == (b"1234567890", None)
    assert second.extensions["connection_reused"] is True


async def test_chunked_response(upstream: Upstream, transport: UpstreamTransport) -> None:
    upstream.reply = reply_with(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    _, body = await fetch(transport, "GET", upstream.url + "/")
    again, _ = await fetch(transport, "GET", upstream.url + "/")

    assert body == b"hello world"
    assert again.extensions["connection_reused"] is True


async def test_response_streams_chunk_by_chunk(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    first_read = asyncio.Event()

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await first_read.wait()  # the client got the first chunk before the second exists
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        return None

    upstream.reply = reply
    response = await transport.handle_async_request(make_request("GET", upstream.url + "/"))
    chunks = aiter(response.stream)  # type: ignore[arg-type]

    assert await anext(chunks) == b"first"
    first_read.set()
    assert await anext(chunks) == b"second"
    with pytest.raises(StopAsyncIteration):
        await anext(chunks)
    await response.aclose()


async def test_close_delimited_body(upstream: Upstream, transport: UpstreamTransport) -> None:
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", close=True)
    _, body = await fetch(transport, "GET", upstream.url + "/")
    upstream.reply = reply_with(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold", close=True)
    second, old = await fetch(transport, "GET", upstream.url + "/")

    assert (body, old) == (b"until the end", b"old")
    assert second.extensions["connection_reused"] is False
    assert second.extensions["http_version"] == b"HTTP/1.0"
    assert upstream.connections == 2


async def test_connection_close_is_honoured(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    upstream.reply = reply_with(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1"
    )
    await fetch(transport, "GET", upstream.url + "/")
    second, _ = await fetch(transport, "GET", upstream.url + "/")

    assert second.extensions["connection_reused"] is False
    assert upstream.connections == 2


@pytest.mark.parametrize(
    ("method", "head"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n"),
    ],
)
async def test_responses_without_body(
    upstream: Upstream, transport: UpstreamTransport, method: str, head: bytes
) -> None:
    upstream.reply = reply_with(head)
    response, body = await fetch(transport, method, upstream.url + "/")
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
    after, next_body = await fetch(transport, "GET", upstream.url + "/")

    assert body == b""
    assert response.status_code == int(head[9:12])
    assert (next_body, after.extensions["connection_reused"]) == (b"next", True)


async def test_interim_responses_are_skipped(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    upstream.reply = reply_with(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
    )
    response, body = await fetch(transport, "POST", upstream.url + "/", content=b"x")

    assert (response.status_code, body) == (201, b"done")
    assert response.headers.raw == [(b"Content-Length", b"4")]


async def test_large_body_applies_backpressure(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    size = 32 * 1024 * 1024
    all_written = asyncio.Event()

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
        all_written.set()
        return None

    upstream.reply = reply
    response = await transport.handle_async_request(make_request("GET", upstream.url + "/"))
    # not reading: socket buffers fill and the upstream cannot finish (far less than 32 MiB fit)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(all_written.wait(), 0.3)
    received = 0
    async for chunk in response.stream:  # type: ignore[union-attr]
        received += len(chunk)
    await response.aclose()

    assert received == size
    assert all_written.is_set()


# the pool


async def test_unread_body_is_not_reused(upstream: Upstream, transport: UpstreamTransport) -> None:
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
    response = await transport.handle_async_request(make_request("GET", upstream.url + "/"))
    await response.aclose()
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    second, body = await fetch(transport, "GET", upstream.url + "/")

    assert (body, second.extensions["connection_reused"]) == (b"ok", False)
    assert upstream.connections == 2


async def test_busy_connection_is_not_shared(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    release = asyncio.Event()

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        if request.target == b"/slow":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsl")
            await writer.drain()
            await release.wait()
            writer.write(b"ow")
            return None
        return await reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfast")(
            request, writer
        )

    upstream.reply = reply
    slow = await transport.handle_async_request(make_request("GET", upstream.url + "/slow"))
    fast, fast_body = await fetch(transport, "GET", upstream.url + "/fast")
    release.set()
    slow_body = b"".join([c async for c in slow.stream])  # type: ignore[union-attr]
    await slow.aclose()
    third, _ = await fetch(transport, "GET", upstream.url + "/fast")

    assert (slow_body, fast_body) == (b"slow", b"fast")
    assert fast.extensions["connection_reused"] is False
    assert third.extensions["connection_reused"] is True
    assert upstream.connections == 2


async def test_connection_limit_waits_then_times_out(upstream: Upstream) -> None:
    transport = UpstreamTransport(max_connections_per_origin=1)
    release = asyncio.Event()

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        await writer.drain()
        if request.index == 1:
            await release.wait()
        writer.write(b"ok")
        return None

    upstream.reply = reply
    try:
        held = await transport.handle_async_request(make_request("GET", upstream.url + "/"))
        short = dict(TIMEOUTS, pool=0.05)
        with pytest.raises(httpx.PoolTimeout) as caught:
            await transport.handle_async_request(
                make_request("GET", upstream.url + "/", timeouts=short)
            )
        waiting = asyncio.ensure_future(fetch(transport, "GET", upstream.url + "/"))
        await upstream.request_arrived.wait()
        release.set()
        assert b"".join([c async for c in held.stream]) == b"ok"  # type: ignore[union-attr]
        await held.aclose()
        response, body = await waiting
    finally:
        await transport.aclose()

    assert error_type(caught.value) == "pool_timeout"
    assert (body, response.extensions["connection_reused"]) == (b"ok", True)
    assert upstream.connections == 1


async def test_idle_connections_are_capped_and_expire(upstream: Upstream) -> None:
    transport = UpstreamTransport(max_idle_per_origin=1, idle_timeout=60.0)
    origin = (b"http", "127.0.0.1", upstream.port, True)
    try:
        both = [
            await transport.handle_async_request(make_request("GET", upstream.url + "/"))
            for _ in range(2)
        ]
        for response in both:
            await response.aread()
            await response.aclose()
        assert transport.pool.idle(origin) == 1
        conn = transport.pool.take(origin)
        assert conn is not None
        transport.pool.release(conn)
        conn.idle_since -= 61  # as if it had been idle past the timeout
        assert transport.pool.take(origin) is None
        assert conn.closed
    finally:
        await transport.aclose()


async def test_idle_connections_are_closed_after_the_idle_timeout(upstream: Upstream) -> None:
    transport = UpstreamTransport(idle_timeout=0.05)
    origin = (b"http", "127.0.0.1", upstream.port, True)
    try:
        await fetch(transport, "GET", upstream.url + "/")
        assert transport.pool.idle(origin) == 1
        await asyncio.wait_for(upstream.disconnected.wait(), 5.0)  # closed by the idle sweep
        assert transport.pool.idle(origin) == 0
    finally:
        await transport.aclose()


async def test_stale_pooled_connection_is_retried_once(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        if request.connection == 1 and request.index == 2:
            return False  # closed while idle, as the upstream's keep-alive timeout would
        return await reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")(request, writer)

    upstream.reply = reply
    await fetch(transport, "GET", upstream.url + "/")
    response, body = await fetch(transport, "GET", upstream.url + "/", trace=events)

    assert (body, response.extensions["connection_reused"]) == (b"ok", False)
    assert upstream.connections == 2
    assert events.names[:4] == [
        "connection.reused",
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.receive_response_headers.started",
    ]
    assert events.seen[4] == (
        "http11.receive_response_headers.failed",
        {"error_type": "connection_closed", "error": events.seen[4][1]["error"]},
    )
    assert events.names[5:7] == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
    ]


async def test_stale_retry_keeps_the_connection_count(upstream: Upstream) -> None:
    transport = UpstreamTransport(max_connections_per_origin=1)
    release = asyncio.Event()

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        if request.connection == 1 and request.index == 2:
            return False  # stale
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        if request.target == b"/hold":
            await writer.drain()
            await release.wait()
        writer.write(b"ok")
        return None

    upstream.reply = reply
    short = dict(TIMEOUTS, pool=0.05)
    try:
        await fetch(transport, "GET", upstream.url + "/")
        await fetch(transport, "GET", upstream.url + "/")  # stale, retried on connection 2
        held = await transport.handle_async_request(make_request("GET", upstream.url + "/hold"))
        with pytest.raises(httpx.PoolTimeout):  # still one connection allowed, and it is busy
            await fetch(transport, "GET", upstream.url + "/", timeouts=short)
        release.set()
        await held.aread()
        await held.aclose()
        response, _ = await fetch(transport, "GET", upstream.url + "/", timeouts=short)
    finally:
        await transport.aclose()

    assert response.extensions["connection_reused"] is True
    assert upstream.connections == 2


async def test_stale_connection_reset_is_retried(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        if request.connection == 1 and request.index == 2:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST
            return False
        return await reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")(request, writer)

    upstream.reply = reply
    await fetch(transport, "DELETE", upstream.url + "/")
    _, body = await fetch(transport, "DELETE", upstream.url + "/")

    assert body == b"ok"
    assert upstream.connections == 2


async def test_stale_connection_is_not_retried_for_post(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        if request.index == 2:
            return False
        return await reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")(request, writer)

    upstream.reply = reply
    await fetch(transport, "POST", upstream.url + "/", content=b"1")
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await fetch(transport, "POST", upstream.url + "/", content=b"2")

    assert error_type(caught.value) == "connection_closed"
    assert not isinstance(caught.value, UpstreamConnectError)
    assert upstream.connections == 1


# failures


async def test_connection_refused(transport: UpstreamTransport, events: Events) -> None:
    with pytest.raises(UpstreamConnectError) as caught:
        await fetch(transport, "GET", f"http://127.0.0.1:{free_port()}/", trace=events)

    assert error_type(caught.value) == "connection_refused"
    assert isinstance(caught.value, httpx.ConnectError)
    assert events.names == ["connection.connect_tcp.started", "connection.connect_tcp.failed"]
    assert events.info("connection.connect_tcp.failed")["error_type"] == "connection_refused"


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listener never accepts and whose accept queue is full: connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


async def test_connect_timeout(
    full_backlog: int, transport: UpstreamTransport, events: Events
) -> None:
    short = dict(TIMEOUTS, connect=0.2)
    with pytest.raises(UpstreamConnectError) as caught:
        await fetch(
            transport, "GET", f"http://127.0.0.1:{full_backlog}/", timeouts=short, trace=events
        )

    assert isinstance(caught.value, httpx.ConnectTimeout)
    assert isinstance(caught.value, httpx.TimeoutException)
    assert error_type(caught.value) == "connect_timeout"
    assert events.info("connection.connect_tcp.failed")["error_type"] == "connect_timeout"


async def test_an_unresponsive_address_leaves_time_for_the_next(
    full_backlog: int, events: Events
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    second = await asyncio.start_server(serve, "127.0.0.2", full_backlog)  # same port, next IP
    transport = UpstreamTransport()
    transport.resolver.pin(
        "two.test", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "127.0.0.2")]
    )
    try:
        url = f"http://two.test:{full_backlog}/"
        short = dict(TIMEOUTS, connect=1.0)  # 0.5 s for the first address, the rest for the next
        _, body = await fetch(transport, "GET", url, timeouts=short, trace=events)
    finally:
        await transport.aclose()
        second.close()
        await second.wait_closed()

    assert body == b"ok"
    assert events.info("connection.connect_tcp.complete")["peer"] == ("127.0.0.2", full_backlog)
    assert events.info("dns.resolve.complete")["cache_hit"] is True


async def test_read_timeout_waiting_for_the_head(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    upstream.reply = reply_with(b"")
    short = dict(TIMEOUTS, read=0.1)
    with pytest.raises(httpx.ReadTimeout) as caught:
        await fetch(transport, "GET", upstream.url + "/", timeouts=short, trace=events)
    upstream.reply = ok
    _, body = await fetch(transport, "GET", upstream.url + "/")

    assert error_type(caught.value) == "read_timeout"
    assert events.info("http11.receive_response_headers.failed")["error_type"] == "read_timeout"
    assert upstream.connections == 2  # the timed-out connection was dropped
    assert body == b"GET /"


async def test_read_timeout_in_the_body(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
    short = dict(TIMEOUTS, read=0.1)
    with pytest.raises(httpx.ReadTimeout):
        await fetch(transport, "GET", upstream.url + "/", timeouts=short, trace=events)

    failed = events.info("http11.receive_response_body.failed")
    assert (failed["error_type"], failed["bytes"]) == ("read_timeout", 5)


async def test_upstream_closing_mid_body(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.", close=True)
    response = await transport.handle_async_request(
        make_request("GET", upstream.url + "/", trace=events)
    )
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        async for _ in response.stream:  # type: ignore[union-attr]
            pass
    await response.aclose()

    assert error_type(caught.value) == "connection_closed"
    assert events.info("http11.receive_response_body.failed")["error_type"] == "connection_closed"


async def test_upstream_closing_before_the_head(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\nContent-", close=True)
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await fetch(transport, "GET", upstream.url + "/")

    assert error_type(caught.value) == "connection_closed"


async def test_invalid_response(upstream: Upstream, transport: UpstreamTransport) -> None:
    upstream.reply = reply_with(b"SMTP ready\r\n\r\n")
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await fetch(transport, "GET", upstream.url + "/")

    assert error_type(caught.value) == "protocol_error"


async def test_endless_response_head(upstream: Upstream, transport: UpstreamTransport) -> None:
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: 0123456789abcdef\r\n" * 5000)
    with pytest.raises(httpx.RemoteProtocolError) as caught:
        await fetch(transport, "GET", upstream.url + "/")

    assert error_type(caught.value) == "protocol_error"
    assert "head larger" in str(caught.value)


async def test_write_timeout(transport: UpstreamTransport) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    body = AsyncBody([b"x" * (1024 * 1024)] * 256)  # far more than socket buffers hold
    short = dict(TIMEOUTS, write=0.2)
    try:
        with pytest.raises(httpx.WriteTimeout) as caught:
            await fetch(transport, "POST", f"http://127.0.0.1:{port}/", stream=body, timeouts=short)
    finally:
        listener.close()

    assert error_type(caught.value) == "write_timeout"


# DNS


async def test_dns_answers_are_cached(upstream: Upstream, events: Events) -> None:
    transport = UpstreamTransport(max_idle_per_origin=0)  # every request connects anew
    url = f"http://localhost:{upstream.port}/"
    try:
        await fetch(transport, "GET", url, trace=events)
        first = events.info("dns.resolve.complete")
        await fetch(transport, "GET", url, trace=events)
        second = events.info("dns.resolve.complete")
    finally:
        await transport.aclose()

    assert first["host"] == "localhost"
    assert "127.0.0.1" in first["answers"]
    assert (first["cache_hit"], second["cache_hit"]) == (False, True)
    assert second["answers"] == first["answers"]


async def test_dns_failure(transport: UpstreamTransport, events: Events) -> None:
    with pytest.raises(UpstreamConnectError) as caught:
        await fetch(transport, "GET", "http://nonexistent.invalid/", trace=events)

    assert error_type(caught.value) == "dns_error"
    assert events.names == ["dns.resolve.started", "dns.resolve.failed"]
    assert events.info("dns.resolve.failed")["error_type"] == "dns_error"


# TLS


@pytest.fixture
async def tls_upstream(pki: Pki) -> AsyncIterator[Upstream]:
    """The upstream behind TLS with the test CA's server certificate (localhost, 127.0.0.1)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server = Upstream(tls=context)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_tls_without_verification(
    tls_upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    url = f"https://localhost:{tls_upstream.port}/secure"
    request = make_request("GET", url, trace=events)
    request.extensions["tls_verify"] = False
    response = await transport.handle_async_request(request)
    body = await response.aread()
    await response.aclose()

    assert body == b"GET /secure"
    assert tls_upstream.server_names == ["localhost"]
    tls = events.info("connection.start_tls.complete")
    assert tls["server_name"] == "localhost"
    assert tls["tls_version"] in ("1.2", "1.3")


async def test_tls_verified_with_the_ca(tls_upstream: Upstream, pki: Pki) -> None:
    transport = UpstreamTransport(cafile=pki.ca)
    url = f"https://localhost:{tls_upstream.port}/"
    try:
        _, body = await fetch(transport, "GET", url)
        second, _ = await fetch(transport, "GET", url)
    finally:
        await transport.aclose()

    assert body == b"GET /"
    assert second.extensions["connection_reused"] is True
    assert tls_upstream.server_names == ["localhost"]


async def test_tls_verification_failure(
    tls_upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    with pytest.raises(UpstreamConnectError) as caught:
        await fetch(transport, "GET", f"https://localhost:{tls_upstream.port}/", trace=events)

    assert error_type(caught.value) == "tls_error"
    assert events.info("connection.start_tls.failed")["error_type"] == "tls_error"


async def test_tls_and_plain_connections_are_not_mixed(tls_upstream: Upstream, pki: Pki) -> None:
    transport = UpstreamTransport(cafile=pki.ca)
    url = f"https://localhost:{tls_upstream.port}/"
    try:
        unverified = make_request("GET", url)
        unverified.extensions["tls_verify"] = False
        response = await transport.handle_async_request(unverified)
        await response.aread()
        await response.aclose()
        verified, _ = await fetch(transport, "GET", url)
    finally:
        await transport.aclose()

    assert verified.extensions["connection_reused"] is False


# trace events


async def test_trace_events_in_order(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    url = f"http://localhost:{upstream.port}/traced"
    _, body = await fetch(transport, "POST", url, content=b"payload", trace=events)
    await fetch(transport, "GET", url, trace=events)

    assert events.names == [
        "dns.resolve.started",
        "dns.resolve.complete",
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
        "connection.reused",
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
    ]
    peer = events.info("connection.connect_tcp.complete")["peer"]
    assert peer == ("127.0.0.1", upstream.port) or peer == ("::1", upstream.port)
    assert events.info("connection.reused") == {"peer": peer}
    assert events.seen[9] == ("http11.receive_response_body.complete", {"bytes": len(body)})


async def test_closing_a_response_early_is_traced(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    upstream.reply = reply_with(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
    response = await transport.handle_async_request(
        make_request("GET", upstream.url + "/", trace=events)
    )
    await response.aclose()

    assert events.names[-1] == "http11.receive_response_body.failed"
    assert events.info("http11.receive_response_body.failed")["error_type"] == "response_closed"


# through httpx.AsyncClient


async def test_as_the_transport_of_an_httpx_client(upstream: Upstream) -> None:
    async with httpx.AsyncClient(transport=UpstreamTransport()) as client:
        response = await client.post(upstream.url + "/form", json={"a": 1})
        streamed = await client.get(upstream.url + "/x", params={"q": "1 2"})

    assert response.status_code == 200
    assert response.text == "POST /form"
    assert streamed.text == "GET /x?q=1+2"
    assert streamed.extensions["connection_reused"] is True


async def test_unsupported_scheme(transport: UpstreamTransport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await transport.handle_async_request(make_request("GET", "ftp://127.0.0.1/"))


# lifecycle


async def test_failed_connects_leave_nothing_open(
    tls_upstream: Upstream, transport: UpstreamTransport
) -> None:
    with pytest.raises(UpstreamConnectError):
        await fetch(transport, "GET", f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(UpstreamConnectError):
        await fetch(transport, "GET", f"https://localhost:{tls_upstream.port}/")

    assert transport.pool.size == 0


async def test_aclose_closes_idle_and_busy_connections(upstream: Upstream) -> None:
    transport = UpstreamTransport()

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        if request.target == b"/busy":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
            return None
        return await ok(request, writer)

    upstream.reply = reply
    busy = await transport.handle_async_request(make_request("GET", upstream.url + "/busy"))
    await fetch(transport, "GET", upstream.url + "/idle")
    assert transport.pool.size == 2
    await transport.aclose()

    assert transport.pool.size == 0
    with pytest.raises(httpx.RemoteProtocolError):
        await busy.aread()
    _, body = await fetch(transport, "GET", upstream.url + "/again")  # still usable
    await transport.aclose()
    assert body == b"GET /again"


async def test_cancelled_request_drops_its_connection(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    upstream.reply = reply_with(b"")  # never answers
    pending = asyncio.ensure_future(fetch(transport, "GET", upstream.url + "/"))
    await upstream.request_arrived.wait()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    upstream.reply = ok
    second, _ = await fetch(transport, "GET", upstream.url + "/")

    assert second.extensions["connection_reused"] is False
    assert upstream.connections == 2


async def test_early_response_stops_the_upload(
    upstream: Upstream, transport: UpstreamTransport
) -> None:
    answered = asyncio.Event()

    class Upload(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"first"
            await answered.wait()
            yield b"never sent"

    async def serve_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"first\r\n")
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(serve_early, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    response = await transport.handle_async_request(
        make_request("POST", f"http://127.0.0.1:{port}/", stream=Upload())
    )
    answered.set()
    body = await response.aread()
    await response.aclose()
    server.close()
    await server.wait_closed()

    assert (response.status_code, body) == (413, b"big")
    assert transport.pool.idle((b"http", "127.0.0.1", port, True)) == 0


async def test_tls_body_streams_with_backpressure(
    tls_upstream: Upstream, transport: UpstreamTransport
) -> None:
    size = 8 * 1024 * 1024

    async def reply(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b"y" * 100_000
        for _ in range(size // len(block)):
            writer.write(b"%x\r\n%b\r\n" % (len(block), block))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        return None

    tls_upstream.reply = reply
    request = make_request("GET", tls_upstream.url + "/")
    request.extensions["tls_verify"] = False
    response = await transport.handle_async_request(request)
    received = 0
    async for chunk in response.stream:  # type: ignore[union-attr]
        received += len(chunk)
    await response.aclose()

    assert received == size // 100_000 * 100_000


async def test_streamed_upload_trace_events(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    await fetch(transport, "POST", upstream.url + "/", stream=AsyncBody([b"a", b"b"]), trace=events)

    assert events.names[2:] == [
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
    ]
    assert upstream.requests[0].body == b"ab"


async def test_failing_upload_raises_its_error(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    class ClientGone(Exception):
        pass

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"start"
            raise ClientGone("the client went away")

    with pytest.raises(ClientGone):
        await fetch(transport, "POST", upstream.url + "/", stream=Broken(), trace=events)

    assert events.info("http11.send_request_headers.failed")["error_type"] == "ClientGone"
    assert transport.pool.size == 0


async def test_events_without_info_share_one_read_only_mapping(
    upstream: Upstream, transport: UpstreamTransport, events: Events
) -> None:
    await fetch(transport, "GET", upstream.url + "/", trace=events)
    empty = [info for _, info in events.seen if not info]
    assert len(empty) >= 3
    assert all(info is NO_INFO for info in empty)
    with pytest.raises(TypeError):
        NO_INFO["x"] = 1  # type: ignore[index]
