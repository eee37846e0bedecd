"""Fixtures for the transport tests: a scriptable raw HTTP/1.1 upstream on loopback, both loops."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest
import uvloop

from dataplane.transport import UpstreamTransport


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every transport test runs on asyncio's loop and on uvloop (what the node runs)."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@dataclass
class ReceivedRequest:
    """A request as the upstream saw it."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    connection: int
    """Which connection (1, 2, ...) carried it."""
    index: int
    """Which request on that connection (1, 2, ...)."""

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (case-insensitive)."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


Reply = Callable[[ReceivedRequest, asyncio.StreamWriter], Awaitable[bool | None]]
"""Writes the response; returns False to close the connection afterwards."""


async def ok(request: ReceivedRequest, writer: asyncio.StreamWriter) -> bool | None:
    """The default reply: 200 with a small Content-Length body naming the request."""
    body = b"%s %s" % (request.method, request.target)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
    return None


class _RequestParser:
    """httptools callbacks collecting complete requests of one connection."""

    def __init__(self, connection: int) -> None:
        self.connection = connection
        self.parser = httptools.HttpRequestParser(self)
        self.done: list[ReceivedRequest] = []
        self._target = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._count = 0

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._count += 1
        method = self.parser.get_method()
        self.done.append(
            ReceivedRequest(
                method,
                self._target,
                self._headers,
                b"".join(self._body),
                self.connection,
                self._count,
            )
        )
        self._target, self._headers, self._body = b"", [], []


@dataclass
class Upstream:
    """A raw HTTP/1.1 server on 127.0.0.1 whose replies each test scripts with ``reply``."""

    reply: Reply = ok
    tls: ssl.SSLContext | None = None
    port: int = 0
    connections: int = 0
    requests: list[ReceivedRequest] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    request_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a connection ends (either side closed it)."""
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        if self.tls is not None:
            self.tls.sni_callback = self._sni
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every connection."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    def _sni(self, _: Any, server_name: str | None, __: ssl.SSLContext) -> None:
        self.server_names.append(server_name)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser = _RequestParser(self.connections)
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                parser.parser.feed_data(data)
                while parser.done:
                    request = parser.done.pop(0)
                    self.requests.append(request)
                    self.request_arrived.set()
                    if await self.reply(request, writer) is False:
                        writer.close()
                        return
                    await writer.drain()
        except (ConnectionError, httptools.HttpParserError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self.disconnected.set()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """A started :class:`Upstream`; set ``upstream.reply`` to script it."""
    server = Upstream()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[UpstreamTransport]:
    """A transport, closed after the test."""
    upstream_transport = UpstreamTransport()
    try:
        yield upstream_transport
    finally:
        await upstream_transport.aclose()


class Events:
    """A ``trace`` extension recording (event, info) pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Mapping[str, Any]]] = []

    def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        self.seen.append((event, info))

    @property
    def names(self) -> list[str]:
        """The event names, in order."""
        return [name for name, _ in self.seen]

    def info(self, event: str) -> dict[str, Any]:
        """The info of the last ``event``."""
        for name, info in reversed(self.seen):
            if name == event:
                found: dict[str, Any] = info
                return found
        raise KeyError(event)


@pytest.fixture
def events() -> Events:
    """A fresh trace recorder."""
    return Events()
