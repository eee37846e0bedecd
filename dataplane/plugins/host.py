"""What the node lends its plugins: state that outlives a config, shared clients, late spans.

Calls plugins make to other systems (http-log's collector, rate-limiting's Redis) go through
:meth:`PluginHost.send_http` and :meth:`PluginHost.redis_pipeline`, which record a
``gateway.io.http`` / ``gateway.io.redis`` CLIENT span when the request is traced.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from dataplane.gateway_config import Consumer, entity_id
from dataplane.tracing.recorder import format_traceparent
from dataplane.tracing.spans import Span
from dataplane.transport import error_type

if TYPE_CHECKING:
    from dataplane.exchange import Exchange

__all__ = ["ConsumerDirectory", "PluginHost", "io_error_type"]

LateSpans = Callable[[tuple[str, ...], bytes, Sequence[Span]], None]
RedisCommand = Sequence[str | int | float | bytes]


class ConsumerDirectory:
    """The consumers of the running config, indexed for authentication plugins."""

    __slots__ = ("_by_key", "_by_ref")

    def __init__(self, consumers: Iterable[Consumer] = ()) -> None:
        self._by_key: dict[str, tuple[Consumer, str]] = {}
        self._by_ref: dict[str, Consumer] = {}
        for consumer in consumers:
            self._by_ref[consumer.id] = consumer
            self._by_ref.setdefault(consumer.username, consumer)
            for credential in consumer.keyauth_credentials:
                # The same ID the control plane shows for the credential.
                credential_id = entity_id("keyauth_credential", credential.key)
                self._by_key[credential.key] = (consumer, credential_id)

    def by_key(self, key: str) -> tuple[Consumer, str] | None:
        """The consumer owning key-auth ``key`` and the credential's ID."""
        return self._by_key.get(key)

    def find(self, ref: str) -> Consumer | None:
        """A consumer by ID or username."""
        return self._by_ref.get(ref)


class PluginHost:
    """Node-wide services for plugin instances (which are rebuilt on every config change)."""

    def __init__(
        self,
        *,
        node_id: str,
        http_transport: httpx.AsyncBaseTransport | None = None,
        late_spans: LateSpans | None = None,
    ) -> None:
        self.node_id = node_id
        self.consumers = ConsumerDirectory()
        self._state: dict[str, dict[Any, Any]] = {}
        self._redis: dict[tuple[str, float], aioredis.Redis] = {}
        self._http: httpx.AsyncClient | None = None
        self._http_transport = http_transport
        self._late_spans = late_spans
        self._tasks: set[asyncio.Task[Any]] = set()

    def load_consumers(self, consumers: Iterable[Consumer]) -> None:
        """A config was loaded: the consumers authentication plugins look up from now on."""
        self.consumers = ConsumerDirectory(consumers)

    def state(self, key: str) -> dict[Any, Any]:
        """A dict that survives config changes (e.g. local rate-limiting counters)."""
        return self._state.setdefault(key, {})

    def redis(self, url: str, *, timeout: float = 2.0) -> aioredis.Redis:
        """A shared Redis client for ``url`` (connect and socket ``timeout`` in seconds)."""
        client = self._redis.get((url, timeout))
        if client is None:
            client = aioredis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            )
            self._redis[(url, timeout)] = client
        return client

    def http(self) -> httpx.AsyncClient:
        """A shared HTTP client for calls plugins make (http-log)."""
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._http_transport)
        return self._http

    async def send_http(
        self,
        method: str,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        timeout_secs: float,
        exchange: Exchange | None = None,
    ) -> httpx.Response:
        """Send a request with the shared client; a ``gateway.io.http`` span when traced.

        The span's context goes out as ``traceparent``; 4xx/5xx and failures without a
        response mark it as an error (as for ``gateway.upstream``).
        """
        request = self.http().build_request(
            method, url, content=content, headers=headers, timeout=timeout_secs
        )
        span = _http_span(exchange, request) if exchange is not None else None
        try:
            response = await self.http().send(request)
        except httpx.HTTPError as exc:
            if span is not None:
                _fail(span, exc)
            raise
        if span is not None:
            span.attributes["http.response.status_code"] = response.status_code
            peer = response.extensions.get("network_peer")
            if peer:
                span.attributes["network.peer.address"] = str(
                    peer[0] if isinstance(peer, tuple) else peer
                )
            if response.status_code >= 400:
                span.set_error(str(response.status_code))
            span.end()
        return response

    async def redis_pipeline(
        self,
        client: aioredis.Redis,
        commands: Sequence[RedisCommand],
        *,
        exchange: Exchange | None = None,
    ) -> list[Any]:
        """Run ``commands`` in one round trip; a ``gateway.io.redis`` span when traced."""
        span = _redis_span(exchange, client, commands) if exchange is not None else None
        try:
            async with client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                results: list[Any] = await pipe.execute()
        except (redis_errors.RedisError, OSError) as exc:
            if span is not None:
                _fail(span, exc)
            raise
        if span is not None:
            span.end()
        return results

    def export_late_spans(
        self, session_ids: tuple[str, ...], trace_id: bytes, spans: Sequence[Span]
    ) -> None:
        """Export spans of a trace that were finished after the trace itself (batched I/O)."""
        if self._late_spans is not None and spans:
            self._late_spans(session_ids, trace_id, spans)

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        """Run background work owned by the node (kept referenced until done)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Close shared clients and wait briefly for background work."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for client in self._redis.values():
            await client.aclose()
        if self._http is not None:
            await self._http.aclose()


def io_error_type(exc: BaseException) -> str:
    """The ``error.type`` of a failed call to another system (SPANS.md's vocabulary)."""
    if isinstance(exc, httpx.TimeoutException | redis_errors.TimeoutError | TimeoutError):
        return "timeout"
    cause: BaseException | None = exc
    while cause is not None:  # the OS error under a client library's exception
        if isinstance(cause, ConnectionRefusedError):
            return "connection_refused"
        if isinstance(cause, socket.gaierror):
            return "dns_error"
        if isinstance(cause, ssl.SSLError):
            return "tls_error"
        cause = cause.__cause__ or cause.__context__
    kind = error_type(exc)
    return "timeout" if kind.endswith("timeout") else kind


def _fail(span: Span, exc: BaseException) -> None:
    span.set_error(io_error_type(exc), str(exc))
    span.record_exception(exc)
    span.end()


def _http_span(exchange: Exchange, request: httpx.Request) -> Span | None:
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    span = exchange.io_span(
        "gateway.io.http",
        {
            "http.request.method": request.method,
            "url.full": str(url.copy_with(username=None, password=None)),
            "server.address": url.host,
            "server.port": port,
        },
    )
    if span is not None:
        if _is_ip(url.host):
            span.attributes["network.peer.address"] = url.host
            span.attributes["network.peer.port"] = port
        trace = exchange.trace
        assert trace is not None
        request.headers["traceparent"] = format_traceparent(trace.trace_id, span.span_id)
    return span


def _redis_span(
    exchange: Exchange, client: aioredis.Redis, commands: Sequence[RedisCommand]
) -> Span | None:
    kwargs = client.connection_pool.connection_kwargs
    host = str(kwargs.get("host", "localhost"))
    port = int(kwargs.get("port", 6379))
    names = {str(command[0]).upper() for command in commands}
    if len(commands) == 1:
        operation = names.pop()
    else:  # semconv: "BATCH <op>" when every command is the same, else "BATCH"
        operation = f"BATCH {names.pop()}" if len(names) == 1 else "BATCH"
    attributes: dict[str, Any] = {
        "db.system.name": "redis",
        "db.operation.name": operation,
        "db.namespace": str(kwargs.get("db", 0)),
        "server.address": host,
        "server.port": port,
    }
    if len(commands) > 1:
        attributes["db.operation.batch.size"] = len(commands)
    if _is_ip(host):
        attributes["network.peer.address"] = host
        attributes["network.peer.port"] = port
    return exchange.io_span("gateway.io.redis", attributes)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
