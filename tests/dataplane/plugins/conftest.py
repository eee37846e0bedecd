"""Fixtures for plugin tests: exchanges, a plugin host, real Redis, a real log collector, and a
real gateway (the proxy served by the node's HTTP server) in front of a real upstream on
loopback."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
import redis.asyncio as aioredis
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from redis.exceptions import RedisError

from controlplane.otlp.convert import attributes_dict
from dataplane.exchange import Exchange
from dataplane.gateway_config import GatewayConfig, normalise_declarative
from dataplane.headers import HeaderList
from dataplane.plugins.host import PluginHost
from dataplane.proxy import Proxy
from dataplane.runtime import GatewayRuntime
from dataplane.tracing.export import SpanExport
from dataplane.tracing.recorder import RequestTrace
from dataplane.tracing.sessions import SessionDefinition
from dataplane.tracing.spans import Span, SpanEvent, now_ns
from dataplane.tracing.tracer import Tracer
from dataplane.transport import UpstreamTransport
from tests.conftest import serve_asgi

REDIS_URL = os.environ.get("ACTIVETRACE_TEST_REDIS", "redis://127.0.0.1:6379/0")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ExchangeFactory(Protocol):
    """Builds a request as the proxy would."""

    def __call__(
        self,
        *,
        method: str = "GET",
        path: str = "/",
        query: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        client_ip: str = "127.0.0.1",
        body: bytes | None = None,
    ) -> Exchange: ...


@pytest.fixture
def make_exchange() -> ExchangeFactory:
    """A factory of real :class:`Exchange` objects."""

    def build(
        *,
        method: str = "GET",
        path: str = "/",
        query: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        client_ip: str = "127.0.0.1",
        body: bytes | None = None,
    ) -> Exchange:
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        exchange = Exchange(
            request_id=uuid.uuid4().hex,
            method=method,
            scheme="http",
            host="gateway.test:8000",
            path=path,
            query_string=query,
            request_headers=HeaderList(raw),
            client_ip=client_ip,
            client_port=50000,
            server_port=8000,
            started_ns=0,
        )
        if body is not None:
            exchange.request_body = body
            exchange.request_body_size = len(body)
        return exchange

    return build


def trace_exchange(exchange: Exchange, plugin_span: str) -> Span:
    """Make ``exchange`` traced, inside a plugin span (as the proxy does); returns that span."""
    trace = RequestTrace(head=[], tail=[], start_ns=now_ns())
    exchange.trace = trace
    span = trace.span(plugin_span, trace.root, now_ns())
    exchange.current_span = span
    return span


@pytest.fixture
async def host() -> AsyncIterator[PluginHost]:
    """A plugin host with real shared clients (closed after the test)."""
    plugin_host = PluginHost(node_id="dp-test")
    yield plugin_host
    await plugin_host.close()


@pytest.fixture
async def redis_url() -> str:
    """The test Redis; when it is unreachable the test fails in CI and is skipped elsewhere."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        message = f"Redis at {REDIS_URL} unreachable: {exc}"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(message)
        pytest.skip(message)
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
def redis_settings(redis_url: str) -> dict[str, Any]:
    """rate-limiting's ``redis_*`` fields for the test Redis."""
    url = httpx.URL(redis_url)
    return {
        "redis_host": url.host,
        "redis_port": url.port or 6379,
        "redis_database": int(url.path.strip("/") or 0),
    }


@dataclass
class Collector:
    """A real HTTP log collector: what it received, and the status it answers with."""

    url: str
    received: asyncio.Queue[tuple[str, dict[str, str], Any]]
    statuses: list[int] = field(default_factory=list)  # answers to give first, then 200

    async def next(self) -> tuple[str, dict[str, str], Any]:
        """The next request it received: (method, headers, decoded JSON body)."""
        return await asyncio.wait_for(self.received.get(), 10)


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """An HTTP server on loopback that records the JSON it is sent."""
    received: asyncio.Queue[tuple[str, dict[str, str], Any]] = asyncio.Queue()
    statuses: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status = statuses.pop(0) if statuses else 200
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if status < 300:
            received.put_nowait((scope["method"], headers, json.loads(body)))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serve_asgi(app) as url:
        yield Collector(f"{url}/logs", received, statuses)


async def echo_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it received as JSON. ``x-upstream-status`` picks the status and
    ``x-upstream-headers`` (a JSON list of pairs) adds response headers."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    lookup = dict(headers)
    answer = json.dumps(
        {
            "method": scope["method"],
            "path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
    ).encode()
    extra = json.loads(lookup.get("x-upstream-headers", "[]"))
    response_headers = [(b"content-type", b"application/json")] + [
        (k.encode(), v.encode()) for k, v in extra
    ]
    response_headers.append((b"content-length", str(len(answer)).encode()))
    status = int(lookup.get("x-upstream-status", "200"))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": answer})


@dataclass
class Gateway:
    """A real proxy on loopback in front of the echo upstream; load configs, trace requests."""

    url: str
    upstream: str
    proxy: Proxy
    host: PluginHost
    tracer: Tracer
    export: SpanExport

    def load(self, document: dict[str, Any]) -> None:
        """Apply a declarative config, as a node does when the control plane pushes one."""
        config = GatewayConfig.load(normalise_declarative(document))
        self.host.load_consumers(config.consumers)
        runtime = GatewayRuntime.build(config, self.host, previous=self.proxy.runtime)
        old = self.proxy.runtime
        self.proxy.runtime = runtime
        self.tracer.sessions.set_routes(runtime.route_services)
        for plugin in old.plugins:
            self.host.spawn(plugin.close())

    def service(self, *plugins: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """A config: one service on the upstream, route ``/`` and ``plugins`` on it."""
        return {
            "services": [
                {
                    "name": "echo",
                    "url": self.upstream,
                    "routes": [{"name": "all", "paths": ["/"]}],
                    "plugins": list(plugins),
                }
            ],
            **extra,
        }

    def trace_everything(self, capture: Sequence[str] = ()) -> None:
        """Start a tracing session covering every request (``capture``: headers, body)."""
        self.tracer.sessions.start(
            SessionDefinition(
                session_id=uuid.uuid4().hex,
                max_samples=10_000,
                duration_secs=600,
                capture=capture,
            )
        )

    def traces(self) -> list[list[Span]]:
        """The spans of each finished trace not sent yet, oldest first for each set of sessions,
        decoded from what the node encoded (export keeps only the bytes)."""
        batches = [*self.export.full, *self.export.pending.values()]
        return [_decoded(encoded) for batch in batches for encoded in batch.traces]


def _decoded(encoded: bytes) -> list[Span]:
    spans = []
    for message in trace_pb2.ScopeSpans.FromString(encoded).spans:
        span = Span(
            message.name,
            message.parent_span_id,
            message.start_time_unix_nano,
            message.kind,
            attributes_dict(message.attributes),
        )
        span.span_id = message.span_id
        span.end_ns = message.end_time_unix_nano
        span.status_code = message.status.code
        span.status_message = message.status.message
        if message.events:
            span.events = [
                SpanEvent(e.name, e.time_unix_nano, attributes_dict(e.attributes))
                for e in message.events
            ]
        spans.append(span)
    return spans


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """The real proxy (real upstream transport) served by the node's HttpServer, and the echo
    upstream."""
    transport = UpstreamTransport()
    host = PluginHost(node_id="dp-test", http_transport=transport)
    export = SpanExport(node_resource=resource_pb2.Resource(), version="test")
    tracer = Tracer(export)
    proxy = Proxy(
        runtime=GatewayRuntime.build(GatewayConfig(), host), tracer=tracer, transport=transport
    )
    async with serve_asgi(echo_upstream) as upstream, serve_asgi(proxy, node_server=True) as url:
        gateway = Gateway(url, upstream, proxy, host, tracer, export)
        try:
            yield gateway
        finally:
            for plugin in proxy.runtime.plugins:
                await plugin.close()
            await host.close()
            await transport.aclose()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the gateway."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        yield http
