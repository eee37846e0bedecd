"""The request headers as the proxy sends them upstream (one pass over the client's)."""

from __future__ import annotations

from typing import Any

from dataplane.expr import RequestFacts
from dataplane.gateway_config import GatewayConfig, normalise_declarative
from dataplane.headers import HeaderList
from dataplane.plugins.host import PluginHost
from dataplane.proxy import _new_exchange, _request_facts, _upstream_headers
from dataplane.router import RouteMatch
from dataplane.runtime import GatewayRuntime


def forwarded(
    raw: list[tuple[bytes, bytes]], traceparent: bytes | None = None
) -> list[tuple[bytes, bytes]]:
    document = {
        "services": [
            {"name": "s", "url": "http://127.0.0.1:9000", "routes": [{"name": "r", "paths": ["/"]}]}
        ]
    }
    runtime = GatewayRuntime.build(
        GatewayConfig.load(normalise_declarative(document)), PluginHost(node_id="dp-test")
    )
    match, _ = runtime.router.match("GET", "gw.example:8000", "/", raw, "http")
    assert isinstance(match, RouteMatch)
    scope = {
        "method": "GET",
        "scheme": "http",
        "client": ("10.0.0.7", 5000),
        "server": ("127.0.0.1", 8000),
        "query_string": b"",
    }
    exchange = _new_exchange(scope, "gw.example:8000", "/", raw, 0)
    exchange.request_headers = HeaderList(raw)
    return _upstream_headers(exchange, match, "127.0.0.1", 9000, traceparent)


def test_names_a_connection_header_lists_are_dropped_before_or_after_it() -> None:
    sent = forwarded(
        [
            (b"host", b"gw.example:8000"),
            (b"x-before", b"1"),
            (b"connection", b"keep-alive, X-Before"),
            (b"x-kept", b"2"),
            (b"connection", b"x-after"),
            (b"x-after", b"3"),
            (b"keep-alive", b"timeout=5"),
        ]
    )
    names = [name for name, _ in sent]
    assert b"x-before" not in names
    assert b"x-after" not in names
    assert b"connection" not in names
    assert b"keep-alive" not in names
    assert (b"x-kept", b"2") in sent


def test_forwarding_headers_are_the_gateways_and_the_clients_ids_are_kept() -> None:
    sent = dict(
        forwarded(
            [
                (b"host", b"gw.example:8000"),
                (b"x-forwarded-for", b"203.0.113.9"),
                (b"x-forwarded-for", b"198.51.100.2"),
                (b"x-forwarded-host", b"spoofed"),
                (b"via", b"1.0 corp"),
                (b"x-request-id", b"mine"),
                (b"x-real-ip", b"spoofed"),
                (b"traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
            ],
            traceparent=b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01",
        )
    )
    assert sent[b"x-forwarded-for"] == b"203.0.113.9, 198.51.100.2, 10.0.0.7"
    assert sent[b"x-forwarded-host"] == b"gw.example"
    assert sent[b"x-real-ip"] == b"10.0.0.7"
    assert sent[b"via"].startswith(b"1.0 corp, ")
    assert sent[b"x-request-id"] == b"mine"
    assert sent[b"host"] == b"127.0.0.1:9000"
    assert sent[b"traceparent"].startswith(b"00-" + b"a" * 32)  # ours, not the client's


def _scope(raw: list[tuple[bytes, bytes]], **changes: Any) -> dict[str, Any]:
    """An ASGI scope for a request with ``raw`` headers (``changes`` override its parts)."""
    return {
        "method": "GET",
        "scheme": "http",
        "client": ("10.0.0.7", 5000),
        "server": ("127.0.0.1", 8000),
        "query_string": b"a=1",
        "headers": raw,
        **changes,
    }


def test_a_new_exchange_holds_each_part_of_the_request_where_it_belongs() -> None:
    """The proxy builds its Exchange without calling the class (no keyword dict per request):
    every field gets its own value."""
    raw = [(b"host", b"gw.example:8000"), (b"x-request-id", b"req-7")]
    scope = _scope(raw, method="PATCH", scheme="https", server=("127.0.0.1", 8443))
    exchange = _new_exchange(scope, "gw.example:8000", "/orders/7", raw, 123_456)
    assert exchange.request_id == "req-7"
    assert (exchange.method, exchange.scheme) == ("PATCH", "https")
    assert (exchange.host, exchange.path) == ("gw.example:8000", "/orders/7")
    assert exchange.query_string == exchange.client_query == b"a=1"
    assert exchange.request_headers.raw == raw
    assert (exchange.client_ip, exchange.client_port, exchange.server_port) == (
        "10.0.0.7",
        5000,
        8443,
    )
    assert exchange.started_ns == 123_456


def test_a_rules_request_facts_are_those_the_keyword_constructor_builds() -> None:
    """The proxy makes a rule's facts without calling the class (no keyword dict per request):
    the same facts as ``RequestFacts(...)`` with the request's parts."""
    raw = [(b"host", b"API.example:8000"), (b"x-debug", b"1")]
    scope = _scope(raw)
    exchange = _new_exchange(scope, "API.example:8000", "/orders/7", raw, 0)
    built = _request_facts(exchange, scope)
    expected = RequestFacts(
        method="GET",
        host="API.example:8000",
        path="/orders/7",
        query_string=b"a=1",
        headers=raw,
        scheme="http",
        sni=None,
        client=("10.0.0.7", 5000),
        server=("127.0.0.1", 8000),
    )
    assert type(built) is RequestFacts
    for name in RequestFacts.__slots__:
        assert getattr(built, name) == getattr(expected, name), name
    assert built.host == "api.example"
    assert built.header(b"x_debug") == ["1"]
