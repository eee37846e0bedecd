"""rate-limiting: windows, local and Redis counters, Kong's headers, fault tolerance, spans.

Counting tests use hour/day limits, so a window boundary during a test is (almost) impossible.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from dataplane.gateway_config import Consumer, Service
from dataplane.plugins.host import PluginHost
from dataplane.plugins.rate_limiting import RateLimitingConfig, RateLimitingPlugin, windows
from dataplane.tracing.spans import KIND_CLIENT, STATUS_ERROR
from tests.conftest import free_port
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway, trace_exchange


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _plugin(host: PluginHost, plugin_id: str = "rl", **config: Any) -> RateLimitingPlugin:
    return RateLimitingPlugin(
        RateLimitingConfig.model_validate(config), plugin_id=plugin_id, host=host
    )


@pytest.fixture
async def redis_plugin_id(redis_url: str) -> AsyncIterator[str]:
    """A fresh plugin ID (the Redis key prefix); its keys are deleted afterwards."""
    plugin_id = f"test-{uuid.uuid4().hex}"
    yield plugin_id
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(f"ratelimit:{plugin_id}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def test_windows_align_to_utc_calendar() -> None:
    now = _ts("2026-12-31T23:59:30.250")
    got = {
        w.period: (w.start, w.end)
        for w in windows(
            [("second", 1), ("minute", 1), ("hour", 1), ("day", 1), ("month", 1), ("year", 1)],
            now,
        )
    }
    assert got["second"] == (int(_ts("2026-12-31T23:59:30")), int(_ts("2026-12-31T23:59:31")))
    assert got["minute"] == (int(_ts("2026-12-31T23:59:00")), int(_ts("2027-01-01T00:00:00")))
    assert got["hour"][1] - got["hour"][0] == 3600
    assert got["day"] == (int(_ts("2026-12-31T00:00:00")), int(_ts("2027-01-01T00:00:00")))
    assert got["month"] == (int(_ts("2026-12-01T00:00:00")), int(_ts("2027-01-01T00:00:00")))
    assert got["year"] == (int(_ts("2026-01-01T00:00:00")), int(_ts("2027-01-01T00:00:00")))


async def test_local_limit_headers_and_429(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    plugin = _plugin(host, hour=2, day=10)
    replies = []
    for _ in range(3):
        exchange = make_exchange()
        replies.append((await plugin.access(exchange), exchange))
    (first, first_exchange), (second, _), (third, third_exchange) = replies
    assert first is None
    assert second is None
    await plugin.header_filter(first_exchange)
    headers = first_exchange.response_headers
    assert headers.get("x-ratelimit-limit-hour") == "2"
    assert headers.get("x-ratelimit-remaining-hour") == "1"
    assert headers.get("x-ratelimit-limit-day") == "10"
    assert headers.get("x-ratelimit-remaining-day") == "9"
    assert headers.get("ratelimit-limit") == "2"  # the most constraining window
    assert headers.get("ratelimit-remaining") == "1"
    assert 1 <= int(headers.get("ratelimit-reset") or 0) <= 3600

    assert third is not None
    assert third.status == 429
    assert json.loads(third.body) == {
        "message": "API rate limit exceeded",
        "request_id": third_exchange.request_id,
    }
    sent = dict(third.headers)
    assert sent["ratelimit-remaining"] == "0"
    assert sent["x-ratelimit-remaining-hour"] == "0"
    assert sent["retry-after"] == sent["ratelimit-reset"]


async def test_one_window_headers_replace_the_upstreams_and_429(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    plugin = _plugin(host, minute=2)
    exchanges = [make_exchange() for _ in range(3)]
    replies = [await plugin.access(exchange) for exchange in exchanges]
    assert replies[:2] == [None, None]
    second = exchanges[1]
    second.response_headers.add("RateLimit-Remaining", "from-upstream")
    second.response_headers.add("X-Upstream", "kept")
    await plugin.header_filter(second)
    headers = second.response_headers
    assert headers.get_all("ratelimit-remaining") == ["0"]
    assert headers.get("x-ratelimit-limit-minute") == "2"
    assert headers.get("x-ratelimit-remaining-minute") == "0"
    assert headers.get("ratelimit-limit") == "2"
    assert 1 <= int(headers.get("ratelimit-reset") or 0) <= 60
    assert headers.get("x-upstream") == "kept"
    assert "retry-after" not in headers
    third = replies[2]
    assert third is not None
    assert third.status == 429
    sent = dict(third.headers)
    assert sent["ratelimit-remaining"] == sent["x-ratelimit-remaining-minute"] == "0"
    assert sent["retry-after"] == sent["ratelimit-reset"]


async def test_counters_per_identifier_and_kept_across_config_changes(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    config: dict[str, Any] = {"day": 1, "limit_by": "header", "header_name": "x-tenant"}
    plugin = _plugin(host, **config)
    assert await plugin.access(make_exchange(headers=[("x-tenant", "a")])) is None
    assert await plugin.access(make_exchange(headers=[("x-tenant", "b")])) is None
    # A new config builds a new instance; the same plugin ID keeps its counters.
    renewed = _plugin(host, **config, hide_client_headers=True)
    reply = await renewed.access(make_exchange(headers=[("x-tenant", "a")]))
    assert reply is not None
    assert reply.status == 429
    assert not any(name.startswith(("ratelimit", "retry")) for name, _ in reply.headers)
    other = _plugin(host, plugin_id="another", **config)
    assert await other.access(make_exchange(headers=[("x-tenant", "a")])) is None


@pytest.mark.parametrize(
    ("limit_by", "extra", "same", "different"),
    [
        ("ip", {}, {"client_ip": "10.0.0.1"}, {"client_ip": "10.0.0.2"}),
        ("consumer", {}, {"consumer": "c1"}, {"consumer": "c2"}),
        ("consumer", {}, {"client_ip": "10.0.0.1"}, {"client_ip": "10.0.0.2"}),  # anonymous
        ("credential", {}, {"credential": "k1"}, {"credential": "k2"}),
        ("service", {}, {"service": "s1"}, {"service": "s2"}),
        ("path", {"path": "/a"}, {"path": "/a"}, {"path": "/b"}),
    ],
)
async def test_limit_by(
    host: PluginHost,
    make_exchange: ExchangeFactory,
    limit_by: str,
    extra: dict[str, str],
    same: dict[str, str],
    different: dict[str, str],
) -> None:
    plugin = _plugin(host, day=1, limit_by=limit_by, **extra)

    def exchange_for(who: dict[str, str]) -> Any:
        exchange = make_exchange(
            client_ip=who.get("client_ip", "10.9.9.9"), path=who.get("path", "/x")
        )
        if "consumer" in who:
            exchange.consumer = Consumer(id=who["consumer"], username=who["consumer"])
        exchange.credential_id = who.get("credential")
        if "service" in who:
            exchange.service = Service(id=who["service"], name=who["service"], host="h")
        return exchange

    assert await plugin.access(exchange_for(same)) is None
    assert await plugin.access(exchange_for(different)) is None
    reply = await plugin.access(exchange_for(same))
    assert reply is not None
    assert reply.status == 429


@pytest.mark.parametrize(
    ("config", "loc", "fragment"),
    [
        ({}, (), "at least one of second, minute, hour"),
        ({"minute": 10, "hour": 5}, (), "the limit for hour (5) cannot be lower"),
        ({"minute": 0}, ("minute",), "greater than 0"),
        ({"minute": 1, "policy": "redis"}, (), "the redis policy needs redis_host"),
        ({"minute": 1, "limit_by": "header"}, (), "needs header_name"),
        ({"minute": 1, "limit_by": "path"}, (), "needs path"),
        ({"minute": 1, "policy": "cluster"}, ("policy",), "'local' or 'redis'"),
        ({"minute": 1, "redis": {"hots": "x"}}, (), "redis.hots is not supported"),
        ({"minute": 1, "sync_rate": 1}, ("sync_rate",), "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(
    config: dict[str, Any], loc: tuple[object, ...], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        RateLimitingConfig.model_validate(config)
    error = raised.value.errors()[0]
    assert error["loc"] == loc
    assert fragment in error["msg"]


def test_kongs_nested_redis_record_is_accepted() -> None:
    config = RateLimitingConfig.model_validate(
        {"minute": 1, "policy": "redis", "redis": {"host": "cache", "port": 6380, "timeout": 50}}
    )
    assert (config.redis_host, config.redis_port, config.redis_timeout) == ("cache", 6380, 50)
    assert config.redis_url() == "redis://cache:6380/0"
    secret = config.model_copy(update={"redis_username": "u", "redis_password": "p@ss/word"})
    assert secret.redis_url() == "redis://u:p%40ss%2Fword@cache:6380/0"


async def test_redis_counters_are_shared_by_nodes(
    redis_url: str,
    redis_settings: dict[str, Any],
    redis_plugin_id: str,
    make_exchange: ExchangeFactory,
) -> None:
    config = {"day": 2, "policy": "redis", **redis_settings}
    node_a, node_b = PluginHost(node_id="a"), PluginHost(node_id="b")
    try:
        on_a = _plugin(node_a, plugin_id=redis_plugin_id, **config)
        on_b = _plugin(node_b, plugin_id=redis_plugin_id, **config)
        assert await on_a.access(make_exchange()) is None
        assert await on_b.access(make_exchange()) is None
        reply = await on_a.access(make_exchange())
        assert reply is not None
        assert reply.status == 429
    finally:
        await node_a.close()
        await node_b.close()
    client = aioredis.Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(f"ratelimit:{redis_plugin_id}:*")]
    assert len(keys) == 1
    ttl = await client.ttl(keys[0])
    await client.aclose()
    assert 0 < ttl <= 86401


async def test_traced_redis_call_is_a_client_span_under_the_plugin(
    host: PluginHost,
    redis_settings: dict[str, Any],
    redis_plugin_id: str,
    make_exchange: ExchangeFactory,
) -> None:
    plugin = _plugin(
        host, plugin_id=redis_plugin_id, hour=5, day=50, policy="redis", **redis_settings
    )
    address, port = redis_settings["redis_host"], redis_settings["redis_port"]
    exchange = make_exchange()
    plugin_span = trace_exchange(exchange, "gateway.access.plugin.rate-limiting")
    assert await plugin.access(exchange) is None
    assert exchange.trace is not None
    (span,) = [s for s in exchange.trace.spans if s.name == "gateway.io.redis"]
    assert span.parent_id == plugin_span.span_id
    assert span.kind == KIND_CLIENT
    assert span.end_ns >= span.start_ns > 0
    assert span.attributes == {
        "db.system.name": "redis",
        "db.operation.name": "BATCH",
        "db.operation.batch.size": 4,  # INCR + EXPIRE per window
        "db.namespace": str(redis_settings["redis_database"]),
        "server.address": address,
        "server.port": port,
        "network.peer.address": address,
        "network.peer.port": port,
    }


async def test_redis_down_fault_tolerant_lets_requests_through(
    host: PluginHost, make_exchange: ExchangeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    config: dict[str, Any] = {
        "day": 1,
        "policy": "redis",
        "redis_host": "127.0.0.1",
        "redis_port": free_port(),
    }
    exchange = make_exchange()
    trace_exchange(exchange, "gateway.access.plugin.rate-limiting")
    with caplog.at_level(logging.ERROR, "dataplane.plugins.rate_limiting"):
        assert await _plugin(host, **config).access(exchange) is None
    assert "request let through" in caplog.text
    assert exchange.trace is not None
    (span,) = [s for s in exchange.trace.spans if s.name == "gateway.io.redis"]
    assert span.status_code == STATUS_ERROR
    assert span.attributes["error.type"] == "connection_refused"
    assert span.events
    assert span.events[0].name == "exception"

    strict = _plugin(host, plugin_id="strict", fault_tolerant=False, **config)
    reply = await strict.access(make_exchange())
    assert reply is not None
    assert (reply.status, json.loads(reply.body)["message"]) == (
        500,
        "An unexpected error occurred",
    )


async def test_traffic_local(gateway: Gateway, client: httpx.AsyncClient) -> None:
    gateway.load(gateway.service({"name": "rate-limiting", "config": {"hour": 2}}))
    first = await client.get("/")
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining-hour"] == "1"
    assert first.headers["ratelimit-limit"] == "2"
    assert (await client.get("/")).status_code == 200
    limited = await client.get("/")
    assert limited.status_code == 429
    assert limited.json()["message"] == "API rate limit exceeded"
    assert int(limited.headers["retry-after"]) >= 1


async def test_traffic_redis_traced(
    gateway: Gateway,
    client: httpx.AsyncClient,
    redis_settings: dict[str, Any],
    redis_plugin_id: str,
) -> None:
    plugin = {
        "id": redis_plugin_id,
        "name": "rate-limiting",
        "config": {"day": 1, "policy": "redis", **redis_settings},
    }
    gateway.load(gateway.service(plugin))
    gateway.trace_everything()
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/")).status_code == 429
    for spans in gateway.traces():
        by_id = {s.span_id: s for s in spans}
        (io,) = [s for s in spans if s.name == "gateway.io.redis"]
        assert by_id[io.parent_id].name == "gateway.access.plugin.rate-limiting"
        assert by_id[io.parent_id].start_ns <= io.start_ns <= io.end_ns
        assert io.end_ns <= by_id[io.parent_id].end_ns
