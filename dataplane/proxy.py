"""The request lifecycle: route, access, balance, send upstream, filter headers, stream, log.

Each step is a small function. Tracing adds spans only when ``exchange.trace`` is set; when no
session is active the only tracing work per request is one dict lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

import httpx

from dataplane.exchange import Exchange
from dataplane.expr import RequestFacts
from dataplane.headers import HeaderList, host_without_port, raw_header
from dataplane.metrics import RequestMetrics
from dataplane.plugins.base import LocalReply
from dataplane.plugins.runtime import EMPTY_CHAIN, PluginChain
from dataplane.router import RouteMatch
from dataplane.router.candidate import NO_ROUTE_SPAN_FIELDS, tries_field
from dataplane.runtime import GatewayRuntime
from dataplane.server import OWN_TASK, RECEIVED_NS, RESPOND, ClientGone, Respond
from dataplane.tracing.context import CURRENT_TRACE
from dataplane.tracing.export import SpanExport
from dataplane.tracing.recorder import RequestTrace, traceparent_header
from dataplane.tracing.root import write_root
from dataplane.tracing.spans import (
    KIND_CLIENT,
    KIND_INTERNAL,
    STATUS_ERROR,
    Span,
    SpanEvent,
    now_ns,
)
from dataplane.tracing.tracer import Tracer, begin_head, capture_headers
from dataplane.tracing.wire import attribute_fields
from dataplane.transport import (
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTransport,
    error_type,
)
from dataplane.transport.events import BODY, REUSED

__all__ = [
    "Proxy",
    "gateway_error",
    "span_error_type",
    "upstream_host",
    "upstream_target",
]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

VIA: Final = b"1.1 activetrace"
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
    }
)
# Never forwarded as the client sent them: hop-by-hop headers, credentials meant for this
# proxy, and X-Real-IP (the gateway sets it; a client's own would come first and win).
_NOT_FORWARDED: Final = HOP_BY_HOP | {b"proxy-authorization", b"x-real-ip"}
_NOT_FORWARDED_TRACED: Final = _NOT_FORWARDED | {b"traceparent"}  # ours replaces the client's
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
# Client headers the forwarding pass looks at (one lookup per header, then the common case).
_FORWARDED_FOR, _VIA, _LENGTH, _TRANSFER_ENCODING, _REQUEST_ID, _CONNECTION = range(6)
_NOTED: Final = {
    b"connection": _CONNECTION,
    b"x-forwarded-for": _FORWARDED_FOR,
    b"via": _VIA,
    b"content-length": _LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"x-request-id": _REQUEST_ID,
}
# Request bodies up to this size are read before proxying (retries can resend them);
# larger or chunked bodies stream through.
BUFFER_LIMIT: Final = 1 << 20
_OFFSET_NS: Final = time.time_ns() - time.perf_counter_ns()
_perf = time.perf_counter_ns
# Request IDs: 128 random bits as hex, unique; Python's generator, not the span IDs' (splitmix64
# can be run backwards, and clients see request IDs: one would give away the next trace IDs).
_getrandbits = random.getrandbits


class UpstreamFailure(Exception):
    """Proxying failed before a response started; carries the gateway's answer."""

    def __init__(self, status: int, message: str, error: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error


class ClientDisconnected(Exception):
    """The client went away before the gateway finished reading the request."""


def gateway_error(status: int, message: str, request_id: str) -> LocalReply:
    """An error the gateway answers itself: JSON ``{"message", "request_id"}``."""
    return LocalReply.json(status, {"message": message, "request_id": request_id})


class Proxy:
    """The ASGI application of a data plane node."""

    def __init__(
        self,
        *,
        runtime: GatewayRuntime,
        tracer: Tracer,
        transport: UpstreamTransport,
        tracing: bool = True,
    ) -> None:
        self.runtime = runtime
        self.tracing = tracing  # False only to measure tracing's cost (bench/tracing.py)
        self.tracer = tracer
        self.transport = transport
        self.requests = 0
        self.metrics = RequestMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (and the lifespan protocol). One coroutine frame: every frame
        between the server and the upstream wait is resumed at each wake-up."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        started = scope.get(RECEIVED_NS) or _perf()
        self.requests += 1
        runtime = self.runtime
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        host = (raw_header(raw_headers, b"host") or b"").decode("latin-1")
        raw_path: bytes | None = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        match, cache_hit = runtime.router.match(
            scope["method"], host, path, raw_headers, scope["scheme"]
        )
        routed = _perf()
        exchange = _new_exchange(scope, host, path, raw_headers, started)
        candidates = (
            self.tracer.sessions.by_route.get(match.route_id if match else None)
            if self.tracing
            else None
        )
        if candidates is not None:
            traceparent = raw_header(raw_headers, b"traceparent")
            start = started + _OFFSET_NS
            # the router span's attributes, encoded once per config
            router_fields = (
                match.span_fields if match is not None else NO_ROUTE_SPAN_FIELDS
            ).router[cache_hit]
            # C, with the router span, when nothing calls for Python (no rule, no traceparent:
            # nearly every trace)
            trace = begin_head(candidates, start, traceparent, routed + _OFFSET_NS, router_fields)
            if trace is None:
                trace = self.tracer.begin(
                    candidates, start, traceparent, _request_facts, exchange, scope
                )
                if trace is not None:
                    router_span = trace.span("gateway.router", trace.root, start)
                    router_span.encoded_attributes = router_fields
                    router_span.end(routed + _OFFSET_NS)
            if trace is not None:
                exchange.trace = trace
                _set_current_trace(trace)
        chain = EMPTY_CHAIN
        respond: Respond | None = scope.get(RESPOND)  # our server's one-call response
        try:
            if match is None:
                await _respond(
                    exchange,
                    send,
                    gateway_error(404, "no Route matched with those values", exchange.request_id),
                    EMPTY_CHAIN,
                    respond,
                )
                return
            chain = runtime.chains.get(match.route_id, EMPTY_CHAIN)
            await self._proxy(exchange, match, chain, runtime, receive, send, respond)
        except (ClientDisconnected, ClientGone):
            _aborted(exchange, "client_disconnected")  # nobody to answer
        except asyncio.CancelledError:
            _aborted(exchange, "cancelled")
            raise
        finally:
            self.metrics.observe(
                match.route_name if match is not None else "",
                exchange.response_status,
                (_perf() - started) / 1e6,
            )
            trace = exchange.trace
            if trace is not None and trace.capture_body and exchange.request_body:
                _capture(exchange, "gateway.request.body", exchange.request_body)
            if chain.log:
                await _log_phase(exchange, chain)
            if trace is not None:
                if OWN_TASK not in scope:  # else the context ends with the task (~1 µs saved)
                    _set_current_trace(None)
                # C, for nearly every trace: _finish_root and Tracer.finish in one call
                done = finish_trace(exchange, match, trace, self.tracer.export)
                if not done:
                    if done is None:
                        _finish_root(exchange, match)
                    else:  # (the root is written)
                        _root_extras(exchange, trace)
                    self.tracer.finish(trace, _response_facts, exchange, scope)

    async def _proxy(
        self,
        exchange: Exchange,
        match: RouteMatch,
        chain: PluginChain,
        runtime: GatewayRuntime,
        receive: Receive,
        send: Send,
        respond: Respond | None,
    ) -> None:
        exchange.route = match.route
        exchange.service = match.service
        exchange.upstream_path = match.upstream_path
        body = await _read_body(exchange, receive)
        reply = await _access(exchange, chain)
        if reply is not None:
            await _respond(exchange, send, reply, chain, respond)
            return
        if isinstance(body, bytes):
            body = _changed_body(exchange, body)
        try:
            response = await _balance_and_send(
                exchange, match, runtime, self.transport, body, receive
            )
        except RequestBodyTooLarge:
            reply = gateway_error(413, "Request size limit exceeded", exchange.request_id)
            await _respond(exchange, send, reply, chain, respond)
            return
        except UpstreamFailure as failure:
            log.warning(
                "upstream of route %s failed: %s (%s)",
                match.route.name,
                failure.message,
                failure.error,
                extra={"request_id": exchange.request_id},
            )
            if exchange.trace is not None:
                exchange.trace.root.attributes["error.type"] = failure.error
            await _respond(
                exchange,
                send,
                gateway_error(failure.status, failure.message, exchange.request_id),
                chain,
                respond,
            )
            return
        exchange.response_source = "upstream"
        await _filter_headers(exchange, chain, response)
        await _stream_body(exchange, chain, response, send, respond)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


_new_object = object.__new__
"""Makes an object of a class without calling it (see _new_exchange)."""
# The classes' __init__ as module globals: reading an attribute of a class (Exchange.__init__)
# is not specialized by CPython 3.11 (a global is), and these are read on every request.
_init_exchange = Exchange.__init__
_init_request_facts = RequestFacts.__init__
_set_current_trace = CURRENT_TRACE.set  # (a method read CPython 3.11 does not specialize)


def _new_exchange(
    scope: Scope, host: str, path: str, raw_headers: list[tuple[bytes, bytes]], started: int
) -> Exchange:
    client = scope.get("client") or ("", 0)
    server = scope.get("server") or ("", 0)
    request_id = raw_header(raw_headers, b"x-request-id")
    # Not Exchange(...): a class called with keywords gathers them into a dict first (CPython
    # 3.11; ~3k instructions for these eleven, on every request). See _request_facts.
    exchange: Exchange = _new_object(Exchange)
    _init_exchange(
        exchange,
        request_id=(
            request_id.decode("latin-1")
            if request_id
            else _getrandbits(128).to_bytes(16, "big").hex()  # what :032x writes, at half its cost
        ),
        method=scope["method"],
        scheme=scope["scheme"],
        host=host,
        path=path,
        query_string=scope.get("query_string", b""),
        request_headers=HeaderList(raw_headers),
        client_ip=client[0],
        client_port=client[1],
        server_port=server[1] or 0,
        started_ns=started,
    )
    return exchange


def _request_facts(exchange: Exchange, scope: Scope) -> RequestFacts:
    server = scope.get("server")
    # Not RequestFacts(...): CPython 3.11 gathers the keywords of a call to a class into a dict
    # that __init__ then reads back (~2.5k instructions for these nine, on every request a rule
    # looks at); __init__ called as a function takes them without one.
    facts: RequestFacts = _new_object(RequestFacts)
    _init_request_facts(
        facts,
        method=exchange.method,
        host=exchange.host or None,
        path=exchange.path,
        query_string=exchange.query_string,
        headers=scope["headers"],
        scheme=exchange.scheme,
        sni=None,
        client=(exchange.client_ip, exchange.client_port) if exchange.client_ip else None,
        server=(server[0], server[1]) if server else None,
    )
    return facts


def _response_facts(exchange: Exchange, scope: Scope) -> RequestFacts:
    facts = _request_facts(exchange, scope)
    total_ms = (_perf() - exchange.started_ns) / 1e6
    upstream = exchange.upstream_ms
    facts.set_response(
        exchange.response_status,
        exchange.response_headers.raw,
        total_ms,
        upstream,
        total_ms - upstream if upstream is not None else total_ms,
    )
    return facts


# -- tracing helpers ---------------------------------------------------------------------------


def _phase_span(exchange: Exchange, name: str) -> Span | None:
    trace = exchange.trace
    if trace is None:
        return None
    return trace.span(name, trace.root)


def _plugin_span(
    exchange: Exchange, phase: Span | None, phase_name: str, plugin: Any
) -> Span | None:
    trace = exchange.trace
    if trace is None or phase is None:
        return None
    span = trace.span(
        f"gateway.{phase_name}.plugin.{plugin.name}",
        phase,
        attributes={"gateway.plugin.id": plugin.plugin_id, "gateway.plugin.name": plugin.name},
    )
    exchange.current_span = span
    return span


def _end_plugin_span(
    exchange: Exchange, span: Span | None, error: BaseException | None = None
) -> None:
    if span is None:
        return
    if error is not None:
        span.set_error(type(error).__name__, str(error))
        span.record_exception(error)
    span.end()
    exchange.current_span = None


def _finish_root(exchange: Exchange, match: RouteMatch | None) -> None:
    trace = exchange.trace
    assert trace is not None
    if not finish_root(exchange, match):  # C reads the exchange's slots; else Python does
        python_finish_root(exchange, match)
    _root_extras(exchange, trace)


def _root_extras(exchange: Exchange, trace: RequestTrace) -> None:
    """The root's log events (records logged during the request) and captured headers."""
    if trace.logs:
        root = trace.root
        root.events = [
            SpanEvent(
                "log",
                time_ns,
                {"log.severity": level, "log.logger": logger, "log.message": message},
            )
            for time_ns, level, logger, message in trace.logs
        ] + (root.events or [])
    if trace.capture_headers:
        attributes = trace.root.attributes
        attributes.update(
            capture_headers("http.request.header.", exchange.request_headers.raw, exchange.redact)
        )
        attributes.update(
            capture_headers("http.response.header.", exchange.response_headers.raw, exchange.redact)
        )


def python_finish_root(exchange: Exchange, match: RouteMatch | None) -> bool:
    """Name the root (``METHOD route-path``) and write its standard attributes from the
    exchange (``write_root``): what ``_wire.finish_root`` does at the exchange's slots (C),
    here for what it leaves to Python, and its reference. Returns True (done)."""
    trace = exchange.trace
    assert trace is not None
    root = trace.root
    # the request is over; what follows is bookkeeping. Now, not ``root.end_ns or now``: a root
    # that ended already keeps its end (write_root), and reading an int member of the C span
    # is not specialized by CPython 3.11.
    end_ns = now_ns()
    route_path = match.matched_path if match is not None else None
    method = exchange.method
    root.name = f"{method} {route_path}" if route_path else method
    query = exchange.redacted_query(exchange.client_query) if exchange.client_query else ""
    total_ms = exchange.total_ms
    user_agent = raw_header(exchange.request_headers.raw, b"user-agent")
    consumer = exchange.consumer
    write_root(
        root,
        end_ns,
        (
            method,
            exchange.scheme,
            exchange.host,
            exchange.path,
            query,
            exchange.client_ip,
            exchange.client_port,
            exchange.server_port,
            exchange.request_body_size,
            exchange.response_body_size,
            exchange.request_id,
            total_ms if total_ms is not None else _total_ms(root, end_ns),
            exchange.upstream_ms or 0.0,
            exchange.response_status,
            user_agent.decode("latin-1") if user_agent is not None else None,
            consumer.id if consumer is not None else None,
        ),
        match.span_attributes if match is not None else _NO_ATTRIBUTES,
        match.encoded_span_attributes if match is not None else b"",
    )
    return True


finish_root: Callable[[Exchange, RouteMatch | None], bool] = python_finish_root
"""``finish_root(exchange, match)``: :func:`python_finish_root` reading the exchange's and the
match's slots in C (``_wire.finish_root``, without its ~100 bytecodes per traced request) when
the extension is built; it returns False, having touched nothing, for what it leaves to
Python (another class, a value of another type, no match)."""
if not TYPE_CHECKING:
    with contextlib.suppress(ImportError):
        from dataplane.tracing._wire import finish_root


def python_finish_trace(
    exchange: Exchange, match: RouteMatch | None, trace: RequestTrace, export: SpanExport
) -> bool | None:
    """``_wire.finish_trace``'s place without the extension: None (nothing done), so that
    ``_finish_root`` and ``Tracer.finish`` do it all."""
    return None


finish_trace: Callable[[Exchange, RouteMatch | None, RequestTrace, SpanExport], bool | None] = (
    python_finish_trace
)
"""``finish_trace(exchange, match, trace, export)``: the end of a traced request, which
``Proxy.__call__`` would otherwise do in two Python frames (``_finish_root``, ``Tracer.finish``),
in one C call (``_wire.finish_trace``: ``finish_root``, then ``finish_head`` when the trace has
no log records and no header capture) when the extension is built. True: all done; False: the
root is written and the rest is Python's; None: nothing was touched."""
if not TYPE_CHECKING:
    with contextlib.suppress(ImportError):
        from dataplane.tracing._wire import finish_trace


_NO_ATTRIBUTES: Final[dict[str, Any]] = {}


def _total_ms(root: Span, now: int) -> float:
    """The root's duration when the exchange has none (no response was finished)."""
    return ((root.end_ns or now) - root.start_ns) / 1e6


def _aborted(exchange: Exchange, kind: str) -> None:
    """The request ended without a complete response: its root span is an error (SPANS.md)."""
    trace = exchange.trace
    if trace is None:
        return
    trace.root.set_error(kind, "the request ended before the response was complete")
    for span in trace.spans:
        if not span.end_ns and span is not trace.root:
            span.end()


# -- lifecycle steps ------------------------------------------------------------------------


async def _read_body(exchange: Exchange, receive: Receive) -> bytes | AsyncIterator[bytes]:
    """Buffer a small body (retries can resend it) or stream a large/chunked one."""
    # One pass for both framing headers (the first Content-Length counts).
    length_value: bytes | None = None
    chunked = False
    for name, value in exchange.request_headers.raw:
        if name == b"content-length":
            if length_value is None:
                length_value = value
        elif name == b"transfer-encoding":
            chunked = True
    if length_value is None and not chunked:
        return b""
    length = int(length_value) if length_value and length_value.isdigit() else None
    if length is not None and length <= BUFFER_LIMIT and not chunked:
        span = _phase_span(exchange, "gateway.read_request_body")
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        exchange.request_body = body
        exchange.request_body_size = len(body)
        if span is not None:
            span.attributes["http.request.body.size"] = len(body)
            span.end()
        return body
    return _stream_request(exchange, receive)


def _changed_body(exchange: Exchange, body: bytes) -> bytes:
    """The body access plugins left in ``exchange.request_body``, with its length header."""
    changed = exchange.request_body
    if changed is None or changed is body:
        return body
    exchange.request_headers.set("content-length", str(len(changed)))
    return changed


class RequestBodyTooLarge(Exception):
    """A streamed request body grew past request-size-limiting's limit."""


async def _stream_request(exchange: Exchange, receive: Receive) -> AsyncIterator[bytes]:
    span = _phase_span(exchange, "gateway.read_request_body")
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        exchange.request_body_size += len(chunk)
        limit = exchange.request_body_limit
        if limit is not None and exchange.request_body_size > limit:
            raise RequestBodyTooLarge(f"request body over {limit} bytes")
        if chunk:
            yield chunk
    if span is not None:
        span.attributes["http.request.body.size"] = exchange.request_body_size
        span.end()


async def _access(exchange: Exchange, chain: PluginChain) -> LocalReply | None:
    """Run access handlers in priority order; the first local reply ends the phase."""
    if not chain.access:
        return None
    if exchange.trace is None:  # the untraced path: no span bookkeeping per plugin
        for plugin in chain.access:
            try:
                reply = await plugin.access(exchange)
            except Exception:
                log.exception("plugin %s failed in access", plugin.name)
                return gateway_error(500, "An unexpected error occurred", exchange.request_id)
            if reply is not None:
                return reply
        return None
    phase = _phase_span(exchange, "gateway.access")
    try:
        for plugin in chain.access:
            span = _plugin_span(exchange, phase, "access", plugin)
            try:
                reply = await plugin.access(exchange)
            except Exception as exc:
                _end_plugin_span(exchange, span, exc)
                log.exception("plugin %s failed in access", plugin.name)
                return gateway_error(500, "An unexpected error occurred", exchange.request_id)
            if reply is not None:
                if span is not None:
                    span.attributes["gateway.plugin.outcome"] = "short_circuit"
                    span.attributes["http.response.status_code"] = reply.status
                    if reply.reason:
                        span.attributes["gateway.plugin.reason"] = reply.reason
                _end_plugin_span(exchange, span)
                return reply
            _end_plugin_span(exchange, span)
        return None
    finally:
        if phase is not None:
            phase.end()


def _upstream_headers(
    exchange: Exchange,
    match: RouteMatch,
    target_host: str,
    target_port: int,
    traceparent: bytes | None,
) -> list[tuple[bytes, bytes]]:
    """The request headers as sent upstream: hop-by-hop removed, forwarding headers added.

    A traced request carries the ``gateway.upstream`` span's context in ``traceparent``. One
    pass over the client's headers keeps what goes upstream and notes what the added headers
    depend on.
    """
    raw = exchange.request_headers.raw
    drop = _NOT_FORWARDED if traceparent is None else _NOT_FORWARDED_TRACED
    connection: list[bytes] = []
    headers = []
    forwarded_for: bytes | None = None
    via: bytes | None = None
    has_length = has_transfer_encoding = has_request_id = False
    for item in raw:
        name = item[0]
        noted = _NOTED.get(name)
        if noted is not None:
            if noted == _FORWARDED_FOR:  # re-added below, all values and then the client
                forwarded_for = (
                    item[1] if forwarded_for is None else forwarded_for + b", " + item[1]
                )
                continue
            if noted == _VIA:  # re-added below, with this gateway appended
                if via is None:
                    via = item[1]
                continue
            if noted == _CONNECTION:  # hop-by-hop (in drop), and so is every name it lists
                connection.append(item[1])
            elif noted == _LENGTH:
                has_length = True
            elif noted == _TRANSFER_ENCODING:
                has_transfer_encoding = True
            else:
                has_request_id = True
        if name in drop or name == b"host" or name.startswith(b"x-forwarded-"):
            continue
        headers.append(item)
    if connection:
        listed = {t.strip().lower() for v in connection for t in v.split(b",")} - drop
        if listed:
            headers = [item for item in headers if item[0] not in listed]
    client = exchange.client_ip.encode()
    host = match.upstream_host
    if host is None:
        default_port = 443 if match.upstream.protocol == "https" else 80
        host = target_host if target_port == default_port else f"{target_host}:{target_port}"
    headers += [
        (b"host", host.encode("latin-1")),
        (b"x-forwarded-for", forwarded_for + b", " + client if forwarded_for else client),
        (b"x-forwarded-proto", exchange.scheme.encode()),
        (b"x-forwarded-host", host_without_port(exchange.host).encode("latin-1")),
        (b"x-forwarded-port", str(exchange.server_port).encode()),
        (b"x-forwarded-path", exchange.path.encode("latin-1")),
        (b"x-real-ip", client),
        (b"via", via + b", " + VIA if via else VIA),
    ]
    if (
        exchange.method in _BODY_METHODS
        and not exchange.request_body_size
        and not has_length
        and not has_transfer_encoding
    ):
        headers.append((b"content-length", b"0"))
    if not has_request_id:
        headers.append((b"x-request-id", exchange.request_id.encode()))
    if traceparent is not None:
        headers.append((b"traceparent", traceparent))
    return headers


async def _balance_and_send(
    exchange: Exchange,
    match: RouteMatch,
    runtime: GatewayRuntime,
    transport: UpstreamTransport,
    body: bytes | AsyncIterator[bytes],
    receive: Receive,
) -> UpstreamResponse:
    """Pick a target and send; retry connection failures on other targets (``retries``)."""
    upstream = match.upstream  # the route's service, as plain values
    balancer = runtime.balancer_for(upstream)
    trace = exchange.trace
    balancer_span = None
    if trace is not None:
        balancer_span = trace.span("gateway.balancer", trace.root)
        balancer_span.encoded_attributes = match.span_fields.first_try  # encoded once per config
    exchange.balancer_span = balancer_span
    tried: set[str] = set()  # "host:port" of failed tries (retries go elsewhere)
    query = exchange.query_string
    raw_target = exchange.upstream_path.encode("latin-1") + (b"?" + query if query else b"")
    target = upstream_target(raw_target)
    timeouts = runtime.timeouts_for(upstream)
    attempts = upstream.retries + 1
    last: UpstreamFailure | None = None
    upstream_started = _perf()
    for attempt in range(attempts):
        if balancer is not None:
            picked = balancer.pick(frozenset(tried) if tried else _NONE_TRIED)
            if picked is None:
                if last is None:  # else every target was tried: answer the last failure
                    last = UpstreamFailure(
                        503, "failure to get a peer from the ring-balancer", "no_healthy_target"
                    )
                break
            host, port = picked.host, picked.port
        else:
            picked = None
            host, port = upstream.host, upstream.port
        if attempt and balancer_span is not None:
            balancer_span.encoded_attributes = match.span_fields.balancer + tries_field(attempt + 1)
        upstream_span = None
        traceparent = None
        events = None
        if trace is not None and balancer_span is not None:
            # url.full: the path and query as sent upstream (the query redacted), before the
            # transport percent-encodes bytes outside ASCII (upstream_target)
            url = f"{upstream.protocol}://{host}:{port}{exchange.upstream_path}"
            # known now: encoded at once (what the response adds goes to its attributes dict)
            values = (
                exchange.method,
                f"{url}?{exchange.redacted_query(query)}" if query else url,
                host,
                port,
                attempt or None,  # (resend_count: on retries only)
            )
            upstream_span, traceparent, events = start_upstream(
                trace, balancer_span, "gateway.upstream", KIND_CLIENT, _UPSTREAM_KEYS, values
            ) or python_start_upstream(
                trace, balancer_span, "gateway.upstream", KIND_CLIENT, _UPSTREAM_KEYS, values
            )
        headers = _upstream_headers(exchange, match, host, port, traceparent)
        try:
            response = await transport.send(
                exchange.method,
                upstream.protocol,
                upstream_host(host),
                port,
                target,
                headers,
                body,
                timeouts=timeouts,
                tls_verify=upstream.tls_verify,
                trace=events,
            )
        except httpx.TransportError as exc:
            kind = span_error_type(exc)
            if balancer is not None and picked is not None:
                balancer.report(picked, "timeout" if "timeout" in kind else "tcp_failure")
            if upstream_span is not None:
                upstream_span.set_error(kind, str(exc))
                upstream_span.record_exception(exc)
                upstream_span.end()
            last = _failure(exc, kind)
            tried.add(f"{host}:{port}")
            retryable = isinstance(exc, UpstreamConnectError) and not isinstance(
                body, AsyncIterator
            )
            if not retryable:
                break
            continue
        if balancer is not None and picked is not None:
            balancer.report(picked, "ok", response.status)
        exchange.upstream_span = upstream_span
        exchange.upstream_started = upstream_started
        if upstream_span is not None and not upstream_answered(
            upstream_span, response.status, response.peer
        ):
            python_upstream_answered(upstream_span, response.status, response.peer)
        return response
    exchange.upstream_ms = (_perf() - upstream_started) / 1e6
    if balancer_span is not None:
        balancer_span.end()
    assert last is not None
    raise last


def python_start_upstream(
    trace: RequestTrace,
    parent: Span,
    name: str,
    kind: int,
    keys: tuple[str, ...],
    values: tuple[Any, ...],
) -> tuple[Span, bytes, Callable[[str, Mapping[str, Any]], None]]:
    """A try's upstream span: a child of ``parent`` (the balancer span) started now, with the
    attributes known at its start encoded at once; the traceparent header the try sends, and
    the transport's trace callable for the span. What ``_wire.start_upstream`` does in one call
    (``start_upstream``), here for what it leaves to Python, and its reference."""
    fields = attribute_fields(keys, values)
    span = trace.span(name, parent, None, kind)
    span.encoded_attributes = fields
    return span, traceparent_header(trace.trace_id, span), phase_events(trace, span)


def _no_start_upstream(*_: Any) -> None:
    """``_wire.start_upstream``'s place without the extension: None (python_start_upstream)."""
    return None


start_upstream: Callable[
    [RequestTrace, Span, str, int, tuple[str, ...], tuple[Any, ...]],
    tuple[Span, bytes, Callable[[str, Mapping[str, Any]], None]] | None,
] = _no_start_upstream
"""``start_upstream(trace, parent, name, kind, keys, values)``: :func:`python_start_upstream`
in one C call (``_wire.start_upstream``) when the extension is built; None, having touched
nothing, for a trace or parent of another type."""
if not TYPE_CHECKING:
    with contextlib.suppress(ImportError):
        from dataplane.tracing._wire import start_upstream


def python_upstream_answered(span: Span, status: int, peer: Any) -> bool:
    """What a try's response adds to its upstream span: the status code, the peer's address
    (as the transport gives it: a (host, port) tuple or a path), an error status from 400 on.
    ``_wire.upstream_answered`` does it in one call (``upstream_answered``); this is its
    reference, and does what it leaves to Python."""
    attributes = span.attributes  # (a C getter: read once)
    attributes["http.response.status_code"] = status
    if peer:
        attributes["network.peer.address"] = peer[0] if isinstance(peer, tuple) else str(peer)
    if status >= 400:
        span.set_error(str(status))
    return True


def _not_answered(span: Span, status: int, peer: Any) -> bool:
    """``_wire.upstream_answered``'s place without the extension: False (not done)."""
    return False


upstream_answered: Callable[[Span, int, Any], bool] = _not_answered
"""``upstream_answered(span, status, peer)``: :func:`python_upstream_answered` in C when the
extension is built; False, having touched nothing, for what it leaves to Python."""
if not TYPE_CHECKING:
    with contextlib.suppress(ImportError):
        from dataplane.tracing._wire import upstream_answered


_UPSTREAM_KEYS: Final = (
    "http.request.method",
    "url.full",
    "server.address",
    "server.port",
    "http.request.resend_count",
)
"""The ``gateway.upstream`` span's attributes known when it starts."""
_NON_ASCII: Final = re.compile(rb"[\x80-\xff]")
_NONE_TRIED: Final[frozenset[str]] = frozenset()


def upstream_target(raw_target: bytes) -> bytes:
    """The request target as sent upstream: the client's, verbatim (no re-quoting, no
    dot-segment removal), with bytes outside ASCII percent-encoded and any fragment dropped."""
    if not raw_target.isascii():
        raw_target = _NON_ASCII.sub(lambda m: b"%%%02X" % m.group()[0], raw_target)
    # find, not `in`: bytes.__contains__ first tries the needle as an int, and the TypeError
    # it raises and clears cost more than the search (a third of this function's time)
    fragment = raw_target.find(b"#")
    return raw_target if fragment < 0 else raw_target[:fragment]


def upstream_host(host: str) -> str:
    """A configured host as the transport connects to it: lower case, IDNA for names outside
    ASCII (as httpx's URL parser would give)."""
    if host.isascii():
        return host.lower()
    return httpx.URL(scheme="http", host=host).raw_host.decode("ascii")


def span_error_type(exc: BaseException) -> str:
    """``error.type`` of a transport exception, as SPANS.md names it."""
    return _span_error(error_type(exc))


def _span_error(kind: str) -> str:
    """The transport's error kind as SPANS.md names it: every kind of timeout is ``timeout``."""
    return "timeout" if kind.endswith("timeout") else kind


def _failure(exc: httpx.TransportError, kind: str) -> UpstreamFailure:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailure(504, "The upstream server is timing out", kind)
    if kind == "dns_error":
        return UpstreamFailure(503, "name resolution failed", kind)
    return UpstreamFailure(502, "An invalid response was received from the upstream server", kind)


class _TransportEvents:
    """Turns the transport's trace events into the upstream phase spans (the Python version
    of ``_wire.PhaseEvents``, which the proxy uses when the extension is built; tests run both).

    The transport is given the bound method :meth:`on_event` (calling a bound method is
    cheaper than an instance's ``__call__``, and a traced exchange makes seven such calls).
    """

    __slots__ = ("_open", "trace", "upstream")

    def __init__(self, trace: RequestTrace, upstream: Span) -> None:
        self.trace = trace
        self.upstream = upstream
        self._open: dict[str, Span] = {}

    def on_event(self, event: str, info: Mapping[str, Any]) -> None:
        """One transport event: a phase started, ended or failed, or the connection was reused."""
        action = _EVENT_ACTIONS.get(event)
        if action is None:
            _phase_event(self.upstream, None, event, info)
            return
        name, span_name, kind, failed = action
        if span_name:  # "<phase>.started"
            self._open[name] = self.trace.span(span_name, self.upstream, None, kind)
            return
        opened = self._open.pop(name, None)
        if opened is None:
            return
        if failed or (info and name in _ANNOTATED):
            _phase_event(self.upstream, opened, event, info)
        else:
            opened.end()


def _phase_event(upstream: Span, opened: Span | None, event: str, info: Mapping[str, Any]) -> None:
    """What a phase event needs beyond starting or ending a span: the connection's reuse
    (``opened`` None), a phase's attributes from its info, a failure."""
    if opened is None:
        if event == "connection.reused":
            upstream.attributes["gateway.connection.reused"] = True
            peer = info.get("peer")
            if peer:
                upstream.attributes["network.peer.address"] = str(
                    peer[0] if isinstance(peer, tuple) else peer
                )
        return
    name, _, stage = event.rpartition(".")
    if info and name in _ANNOTATED:
        _annotate(opened, name, info)
    if stage == "failed":
        opened.set_error(
            _span_error(str(info.get("error_type", "error"))), str(info.get("error", ""))
        )
    opened.end()


_EVENT_SPANS: Final = {
    "dns.resolve": "gateway.dns",
    "connection.connect_tcp": "gateway.upstream.connect",
    "connection.start_tls": "gateway.upstream.tls",
    "http11.send_request_headers": "gateway.upstream.send_request",
    "http11.receive_response_headers": "gateway.upstream.ttfb",
    "http11.receive_response_body": "gateway.upstream.read_response",
}
# One lookup per transport event on the traced path: (phase, span name to start or "", kind,
# failed) for "<phase>.started", "<phase>.complete" and "<phase>.failed".
_EVENT_ACTIONS: Final = {
    f"{name}.{stage}": (
        name,
        span_name if stage == "started" else "",
        KIND_CLIENT if name == "dns.resolve" else KIND_INTERNAL,
        stage == "failed",
    )
    for name, span_name in _EVENT_SPANS.items()
    for stage in ("started", "complete", "failed")
}
# The phases whose end carries attributes (_annotate); the others' info is not read.
_ANNOTATED: Final = frozenset(
    {
        "dns.resolve",
        "connection.connect_tcp",
        "connection.start_tls",
        "http11.receive_response_body",
    }
)

_CPhaseEvents: type[_wire.PhaseEvents] | None
try:  # the same in C (dataplane/tracing/_wire.c): seven events per traced request
    from dataplane.tracing import _wire
    from dataplane.tracing._wire import set_phase_table
except ImportError:
    _CPhaseEvents = None
else:
    _CPhaseEvents = _wire.PhaseEvents
    # What C does per event: (phase slot, span to start, kind, failed, annotated in Python[,
    # info key of an int, attribute it sets]); the response body's size is set in C, and a
    # reused connection (slot -1) marks the upstream span there too.
    set_phase_table(
        {
            **{
                event: (
                    list(_EVENT_SPANS).index(name),
                    span_name,
                    kind,
                    failed,
                    name in _ANNOTATED and name != BODY,
                    *(("bytes", "http.response.body.size") if name == BODY else ()),
                )
                for event, (name, span_name, kind, failed) in _EVENT_ACTIONS.items()
            },
            REUSED: (-1, "", KIND_INTERNAL, False, False),
        },
        Span,
        _phase_event,
    )


def python_phase_events(
    trace: RequestTrace, upstream: Span
) -> Callable[[str, Mapping[str, Any]], None]:
    """The transport's trace callable for one try, in Python (:class:`_TransportEvents`)."""
    return _TransportEvents(trace, upstream).on_event


phase_events: Callable[[RequestTrace, Span], Callable[[str, Mapping[str, Any]], None]] = (
    python_phase_events if _CPhaseEvents is None else _CPhaseEvents
)
"""``phase_events(trace, upstream)``: the transport's trace callable for one try, C
(``_wire.PhaseEvents``) when built, without a Python frame per try."""


def _annotate(span: Span, name: str, info: Mapping[str, Any]) -> None:
    attributes = span.attributes
    if name == "dns.resolve":
        attributes["dns.question.name"] = str(info.get("host", ""))
        attributes["gateway.dns.cache_hit"] = bool(info.get("cache_hit", False))
        answers = info.get("answers")
        if answers:
            attributes["gateway.dns.answers"] = [str(a) for a in answers]
    elif name == "connection.connect_tcp":
        peer = info.get("peer")
        if peer:
            attributes["network.peer.address"] = str(peer[0] if isinstance(peer, tuple) else peer)
        attributes["gateway.connection.reused"] = False
    elif name == "connection.start_tls":
        if info.get("tls_version"):
            attributes["tls.protocol.version"] = str(info["tls_version"])
        if info.get("server_name"):
            attributes["tls.server_name"] = str(info["server_name"])
    elif name == "http11.receive_response_body" and "bytes" in info:
        attributes["http.response.body.size"] = int(info["bytes"])


async def _filter_headers(
    exchange: Exchange, chain: PluginChain, response: UpstreamResponse
) -> None:
    """Response headers from upstream, minus hop-by-hop, then header_filter plugins."""
    exchange.response_status = response.status
    raw: list[tuple[bytes, bytes]] = []
    exchange.response_headers.raw = raw  # a fresh list in the exchange's HeaderList (not a new one)
    for name, value in response.headers:
        name = name.lower()
        if name not in HOP_BY_HOP:
            raw.append((name, value))
    raw.append((b"via", VIA))
    await _header_filter_phase(exchange, chain)


async def _header_filter_phase(exchange: Exchange, chain: PluginChain) -> None:
    """header_filter plugins, for upstream responses and the gateway's own alike (Kong)."""
    if not chain.header_filter:
        return
    if exchange.trace is None:
        for plugin in chain.header_filter:
            try:
                await plugin.header_filter(exchange)
            except Exception:
                log.exception("plugin %s failed in header_filter", plugin.name)
        return
    phase = _phase_span(exchange, "gateway.header_filter")
    for plugin in chain.header_filter:
        span = _plugin_span(exchange, phase, "header_filter", plugin)
        try:
            await plugin.header_filter(exchange)
        except Exception as exc:
            log.exception("plugin %s failed in header_filter", plugin.name)
            _end_plugin_span(exchange, span, exc)
            continue
        _end_plugin_span(exchange, span)
    if phase is not None:
        phase.end()


async def _stream_body(
    exchange: Exchange,
    chain: PluginChain,
    response: UpstreamResponse,
    send: Send,
    respond: Respond | None,
) -> None:
    """Send the response, streaming the body through body_filter plugins."""
    headers = exchange.response_headers
    filters = chain.body_filter
    if filters:
        headers.remove("content-length")
    trace = exchange.trace
    write_span = trace.span("gateway.response.write", trace.root) if trace is not None else None
    whole = None if filters else response.read_buffered()
    if whole is not None:  # the whole body is here already: one send, no stream to iterate
        _end_upstream(exchange)
        await _send_whole(send, respond, exchange.response_status, headers.raw, whole)
        exchange.response_body_size = len(whole)
        if whole and trace is not None and trace.capture_body:
            _capture(exchange, "gateway.response.body", whole)
        exchange.total_ms = (_perf() - exchange.started_ns) / 1e6
        if write_span is not None:
            write_span.end()
        return
    filter_span = _phase_span(exchange, "gateway.body_filter") if filters else None
    plugin_ns = [0] * len(filters) if filter_span is not None and trace is not None else None
    filter_ns = 0
    chunks = 0
    await send(
        {"type": "http.response.start", "status": exchange.response_status, "headers": headers.raw}
    )
    try:
        async for chunk in response:
            chunks += 1
            if filters:
                t = _perf()
                chunk = _run_body_filters(exchange, filters, chunk, plugin_ns, last=False)
                filter_ns += _perf() - t
            if chunk:
                exchange.response_body_size += len(chunk)
                if trace is not None and trace.capture_body:
                    _capture(exchange, "gateway.response.body", chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if filters:
            t = _perf()
            tail = _run_body_filters(exchange, filters, b"", plugin_ns, last=True)
            filter_ns += _perf() - t
            if tail:
                exchange.response_body_size += len(tail)
                await send({"type": "http.response.body", "body": tail, "more_body": True})
    except httpx.TransportError as exc:
        _upstream_broke(exchange, exc)
        raise
    finally:
        await response.aclose()
        _end_upstream(exchange)
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    exchange.total_ms = (_perf() - exchange.started_ns) / 1e6
    if filter_span is not None:
        filter_span.attributes["gateway.body_filter.chunks"] = chunks
        filter_span.end(filter_span.start_ns + filter_ns)
        if trace is not None and plugin_ns is not None:
            _body_filter_spans(trace, filter_span, filters, plugin_ns, chunks)
    if write_span is not None:
        write_span.end()


def _body_filter_spans(
    trace: RequestTrace, phase: Span, filters: tuple[Any, ...], spent: list[int], chunks: int
) -> None:
    """One span per body filter: its total over all chunks, laid end to end in the phase."""
    start = phase.start_ns
    for plugin, ns in zip(filters, spent, strict=True):
        span = trace.span(
            f"gateway.body_filter.plugin.{plugin.name}",
            phase,
            start,
            attributes={
                "gateway.plugin.id": plugin.plugin_id,
                "gateway.plugin.name": plugin.name,
                "gateway.body_filter.chunks": chunks,
            },
        )
        span.end(start + ns)
        start += ns


def _run_body_filters(
    exchange: Exchange,
    filters: tuple[Any, ...],
    chunk: bytes,
    timings: list[int] | None,
    *,
    last: bool,
) -> bytes:
    for index, plugin in enumerate(filters):
        started = _perf() if timings is not None else 0
        try:
            chunk = plugin.body_filter(exchange, chunk, last)
        except Exception:
            log.exception("plugin %s failed in body_filter", plugin.name)
        if timings is not None:
            timings[index] += _perf() - started
    return chunk


def _capture(exchange: Exchange, key: str, chunk: bytes) -> None:
    trace = exchange.trace
    assert trace is not None
    attributes = trace.root.attributes
    current = attributes.get(key, "")
    room = trace.body_max_bytes - len(current.encode())
    if room <= 0:
        if chunk:
            attributes[key.replace(".body", ".body.truncated")] = True
        return
    piece = chunk[:room]
    attributes[key] = current + piece.decode("utf-8", "replace")
    if len(chunk) > room:
        attributes[key.replace(".body", ".body.truncated")] = True


def _upstream_broke(exchange: Exchange, exc: httpx.TransportError) -> None:
    span = exchange.upstream_span
    if span is not None:
        span.set_error(span_error_type(exc), str(exc))
        span.record_exception(exc)
    if exchange.trace is not None:
        exchange.trace.root.attributes["error.type"] = span_error_type(exc)
        exchange.trace.root.status_code = STATUS_ERROR


def _end_upstream(exchange: Exchange) -> None:
    if exchange.upstream_started is not None:
        exchange.upstream_ms = (_perf() - exchange.upstream_started) / 1e6
    for span in (exchange.upstream_span, exchange.balancer_span):
        if span is not None:
            span.end()


async def _send_whole(
    send: Send,
    respond: Respond | None,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    """A response whose body is all here: one call to the server when it can take it."""
    if respond is None or not respond(status, headers, body):
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _respond(
    exchange: Exchange,
    send: Send,
    reply: LocalReply,
    chain: PluginChain,
    respond: Respond | None,
) -> None:
    """Send a response the gateway produced itself (header_filter plugins still run)."""
    exchange.response_status = reply.status
    headers = HeaderList([(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers])
    headers.raw.append((b"x-request-id", exchange.request_id.encode()))
    exchange.response_headers = headers
    await _header_filter_phase(exchange, chain)
    headers = exchange.response_headers
    headers.set("content-length", str(len(reply.body)))
    span = _phase_span(exchange, "gateway.response.write")
    await _send_whole(send, respond, exchange.response_status, headers.raw, reply.body)
    exchange.response_body_size = len(reply.body)
    exchange.total_ms = (_perf() - exchange.started_ns) / 1e6
    if exchange.trace is not None and exchange.trace.capture_body and reply.body:
        _capture(exchange, "gateway.response.body", reply.body)
    if span is not None:
        span.end()


async def _log_phase(exchange: Exchange, chain: PluginChain) -> None:
    """After the response: log handlers (errors are logged, never raised)."""
    phase = _phase_span(exchange, "gateway.log")
    for plugin in chain.log:
        span = _plugin_span(exchange, phase, "log", plugin)
        try:
            await plugin.log(exchange)
        except Exception as exc:
            log.exception("plugin %s failed in log", plugin.name)
            _end_plugin_span(exchange, span, exc)
            continue
        _end_plugin_span(exchange, span)
    if phase is not None:
        phase.end()
