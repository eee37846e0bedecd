"""The plugin host: consumers for auth plugins, shared clients, traced calls to other systems."""

from __future__ import annotations

import socket

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from dataplane.gateway_config import Consumer, KeyAuthCredential, entity_id
from dataplane.plugins.host import ConsumerDirectory, PluginHost, io_error_type
from dataplane.tracing.spans import KIND_CLIENT, STATUS_ERROR, STATUS_UNSET
from tests.conftest import free_port
from tests.dataplane.plugins.conftest import Collector, ExchangeFactory, trace_exchange


def test_consumer_directory() -> None:
    alice = Consumer(
        id="c1",
        username="alice",
        keyauth_credentials=(KeyAuthCredential(key="k1"), KeyAuthCredential(key="k2")),
    )
    directory = ConsumerDirectory([alice, Consumer(id="c2", username="bob")])
    assert directory.by_key("k2") == (alice, entity_id("keyauth_credential", "k2"))
    assert directory.by_key("nope") is None
    assert directory.find("c1") == alice
    assert directory.find("bob") is not None
    assert directory.find("carol") is None


async def test_load_consumers_replaces_the_directory(host: PluginHost) -> None:
    assert host.consumers.find("alice") is None
    host.load_consumers([Consumer(id="c1", username="alice")])
    assert host.consumers.find("alice") is not None


async def test_shared_clients_and_state(host: PluginHost) -> None:
    assert host.http() is host.http()
    assert host.redis("redis://127.0.0.1:6379/0") is host.redis("redis://127.0.0.1:6379/0")
    assert host.redis("redis://127.0.0.1:6379/0", timeout=1) is not host.redis(
        "redis://127.0.0.1:6379/0"
    )
    host.state("x")["n"] = 1
    assert host.state("x") == {"n": 1}


async def test_untraced_call_has_no_span(
    host: PluginHost, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    exchange = make_exchange()
    response = await host.send_http(
        "POST", collector.url, content=b"{}", headers={}, timeout_secs=5, exchange=exchange
    )
    assert response.status_code == 200
    assert exchange.trace is None


async def test_refused_http_call_is_an_error_span(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange()
    parent = trace_exchange(exchange, "gateway.log.plugin.x")
    with pytest.raises(httpx.ConnectError):
        await host.send_http(
            "POST",
            f"http://127.0.0.1:{free_port()}/",
            content=b"{}",
            headers={},
            timeout_secs=5,
            exchange=exchange,
        )
    assert exchange.trace is not None
    (span,) = [s for s in exchange.trace.spans if s.name == "gateway.io.http"]
    assert (span.parent_id, span.kind, span.status_code) == (
        parent.span_id,
        KIND_CLIENT,
        STATUS_ERROR,
    )
    assert span.attributes["error.type"] == "connection_refused"
    assert span.end_ns > 0


async def test_single_redis_command_is_named_by_it(
    host: PluginHost, redis_url: str, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange()
    trace_exchange(exchange, "gateway.access.plugin.x")
    client = host.redis(redis_url)
    assert await host.redis_pipeline(client, [("PING",)], exchange=exchange) == [True]
    assert exchange.trace is not None
    (span,) = [s for s in exchange.trace.spans if s.name == "gateway.io.redis"]
    assert span.attributes["db.operation.name"] == "PING"
    assert "db.operation.batch.size" not in span.attributes
    assert span.status_code == STATUS_UNSET


def test_io_error_types() -> None:
    def caused(exc: BaseException, cause: BaseException) -> BaseException:
        exc.__cause__ = cause
        return exc

    assert io_error_type(httpx.ReadTimeout("slow")) == "timeout"
    assert io_error_type(caused(RedisConnectionError("x"), ConnectionRefusedError())) == (
        "connection_refused"
    )
    assert io_error_type(caused(httpx.ConnectError("x"), socket.gaierror())) == "dns_error"
    assert io_error_type(httpx.RemoteProtocolError("bad")) == "protocol_error"
    assert io_error_type(ValueError("odd")) == "ValueError"
