"""http-log: Kong-shaped entries, a bounded batching queue that never blocks, retries and
drops, and the traced path (sent in the log phase as a ``gateway.io.http`` span)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataplane.gateway_config import Consumer, KeyAuthCredential, Route, Service
from dataplane.plugins.host import PluginHost
from dataplane.plugins.http_log import HttpLogConfig, HttpLogPlugin, log_entry
from dataplane.tracing.spans import KIND_CLIENT, STATUS_ERROR
from tests.conftest import free_port
from tests.dataplane.plugins.conftest import Collector, ExchangeFactory, Gateway, trace_exchange

PluginFactory = Callable[..., HttpLogPlugin]


@pytest.fixture
async def make_plugin(host: PluginHost) -> AsyncIterator[PluginFactory]:
    """http-log plugins on the test host; closed (queues flushed) after the test."""
    made: list[HttpLogPlugin] = []

    def build(**config: Any) -> HttpLogPlugin:
        plugin = HttpLogPlugin(HttpLogConfig.model_validate(config), plugin_id="hl", host=host)
        made.append(plugin)
        return plugin

    yield build
    for plugin in made:
        await plugin.close()


def test_entry_is_kong_shaped_and_redacted(make_exchange: ExchangeFactory) -> None:
    exchange = make_exchange(
        method="POST",
        path="/orders",
        query=b"apikey=secret&page=2",
        headers=[("authorization", "Basic x"), ("apikey", "secret"), ("accept", "a/b")],
        body=b"12345",
    )
    exchange.redact.update({"apikey"})
    exchange.route = Route(id="r1", name="orders", service_id="s1", paths=("/orders",))
    exchange.service = Service(id="s1", name="shop", host="shop.internal")
    exchange.consumer = Consumer(
        id="c1", username="alice", keyauth_credentials=(KeyAuthCredential(key="secret"),)
    )
    exchange.credential_id = "cred-1"
    exchange.response_status = 201
    exchange.response_headers.add("set-cookie", "s=1")
    exchange.response_headers.add("x-a", "1")
    exchange.response_headers.add("x-a", "2")
    exchange.response_body_size = 7
    exchange.total_ms, exchange.upstream_ms = 12.5, 10.0
    exchange.response_source = "upstream"
    exchange.plugin_data["correlation_id"] = "corr-1"

    entry = log_entry(exchange, "dp-1")
    assert entry["request"] == {
        "id": exchange.request_id,
        "method": "POST",
        "uri": "/orders?apikey=[REDACTED]&page=2",
        "url": "http://gateway.test:8000/orders?apikey=[REDACTED]&page=2",
        "querystring": {"apikey": "[REDACTED]", "page": "2"},
        "headers": {"authorization": "[REDACTED]", "apikey": "[REDACTED]", "accept": "a/b"},
        "size": 5,
    }
    assert entry["response"] == {
        "status": 201,
        "headers": {"set-cookie": "[REDACTED]", "x-a": ["1", "2"]},
        "size": 7,
    }
    assert entry["latencies"] == {"request": 12.5, "proxy": 10.0, "gateway": 2.5, "kong": 2.5}
    assert entry["consumer"] == {"id": "c1", "username": "alice", "custom_id": None}
    assert "secret" not in json.dumps(entry)
    assert entry["route"]["name"] == "orders"
    assert entry["service"]["host"] == "shop.internal"
    assert entry["authenticated_entity"] == {"id": "cred-1"}
    assert entry["correlation_id"] == "corr-1"
    assert (entry["client_ip"], entry["source"], entry["node_id"]) == (
        "127.0.0.1",
        "upstream",
        "dp-1",
    )
    assert isinstance(entry["started_at"], int)
    assert "trace_id" not in entry


async def test_batches_by_size(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    plugin = make_plugin(
        http_endpoint=collector.url,
        method="PUT",
        headers={"x-tenant": "t1"},
        queue={"max_batch_size": 3, "max_coalescing_delay": 3600},
    )
    exchanges = [make_exchange(path=f"/{n}") for n in range(3)]
    for exchange in exchanges:
        await plugin.log(exchange)
    method, headers, batch = await collector.next()
    assert method == "PUT"
    assert headers["content-type"] == "application/json"
    assert headers["x-tenant"] == "t1"
    assert [entry["request"]["uri"] for entry in batch] == ["/0", "/1", "/2"]


async def test_flushes_by_time(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    plugin = make_plugin(
        http_endpoint=collector.url, queue={"max_batch_size": 100, "max_coalescing_delay": 0.05}
    )
    await plugin.log(make_exchange(path="/alone"))
    _, _, batch = await collector.next()
    assert [entry["request"]["uri"] for entry in batch] == ["/alone"]


async def test_one_entry_per_request_by_default_and_legacy_fields(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    assert HttpLogConfig.model_validate(
        {"http_endpoint": collector.url, "queue_size": 5, "flush_timeout": 2, "retry_count": 3}
    ).queue.model_dump(include={"max_batch_size", "max_coalescing_delay"}) == {
        "max_batch_size": 5,
        "max_coalescing_delay": 2.0,
    }
    plugin = make_plugin(http_endpoint=collector.url)
    await plugin.log(make_exchange(path="/one"))
    _, _, entry = await collector.next()
    assert entry["request"]["uri"] == "/one"  # an object, not an array


async def test_retries_with_backoff(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    collector.statuses.extend([500, 503])
    plugin = make_plugin(http_endpoint=collector.url, queue={"initial_retry_delay": 0.01})
    await plugin.log(make_exchange(path="/retried"))
    _, _, entry = await collector.next()
    assert entry["request"]["uri"] == "/retried"
    await plugin.close()
    assert plugin.stats["sent"] == 1
    assert plugin.stats.get("failed", 0) == 0


async def test_full_queue_drops_and_counts_without_blocking(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    plugin = make_plugin(
        http_endpoint=collector.url,
        queue={"max_entries": 2, "max_batch_size": 2, "max_coalescing_delay": 3600},
    )
    # No await between these: the sender has not run, the queue holds two, the third drops.
    for n in range(3):
        assert plugin.queue.put(json.dumps({"n": n}).encode()) is (n < 2)
    assert plugin.stats["dropped"] == 1
    _, _, batch = await collector.next()
    assert batch == [{"n": 0}, {"n": 1}]


async def test_unreachable_collector_never_blocks_the_request(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory
) -> None:
    plugin = make_plugin(
        http_endpoint=f"http://127.0.0.1:{free_port()}/logs", queue={"max_retry_time": -1}
    )
    await plugin.log(make_exchange())  # returns at once: the entry is only queued
    assert len(plugin.queue) == 1
    await plugin.close()
    assert plugin.stats["failed"] == 1
    assert not plugin.queue.put(b"{}")  # closed


async def test_traced_request_sends_in_the_log_phase_with_a_span(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    user_url = collector.url.replace("http://", "http://logger:s3cret@")
    plugin = make_plugin(http_endpoint=user_url, queue={"max_batch_size": 50})
    exchange = make_exchange()
    plugin_span = trace_exchange(exchange, "gateway.log.plugin.http-log")
    await plugin.log(exchange)
    assert len(plugin.queue) == 0  # sent, not queued
    trace = exchange.trace
    assert trace is not None
    (span,) = [s for s in trace.spans if s.name == "gateway.io.http"]
    assert span.parent_id == plugin_span.span_id
    assert span.kind == KIND_CLIENT
    assert 0 < span.start_ns <= span.end_ns
    port = int(collector.url.split(":")[2].split("/")[0])
    assert span.attributes == {
        "http.request.method": "POST",
        "url.full": collector.url,  # no user info
        "server.address": "127.0.0.1",
        "server.port": port,
        "network.peer.address": "127.0.0.1",
        "network.peer.port": port,
        "http.response.status_code": 200,
    }
    _, headers, batch = await collector.next()
    assert headers["traceparent"] == f"00-{trace.trace_id.hex()}-{span.span_id.hex()}-01"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"logger:s3cret").decode()
    assert batch[0]["trace_id"] == trace.trace_id.hex()


async def test_traced_send_failure_is_an_error_span_and_the_entry_is_retried(
    make_plugin: PluginFactory, make_exchange: ExchangeFactory, collector: Collector
) -> None:
    collector.statuses.append(502)
    plugin = make_plugin(http_endpoint=collector.url)
    exchange = make_exchange(path="/later")
    trace_exchange(exchange, "gateway.log.plugin.http-log")
    await plugin.log(exchange)
    assert exchange.trace is not None
    (span,) = [s for s in exchange.trace.spans if s.name == "gateway.io.http"]
    assert span.status_code == STATUS_ERROR
    assert span.attributes["error.type"] == "502"
    _, _, entry = await collector.next()  # delivered by the queue
    assert entry["request"]["uri"] == "/later"


@pytest.mark.parametrize(
    ("config", "loc", "fragment"),
    [
        ({}, ("http_endpoint",), "Field required"),
        ({"http_endpoint": "ftp://x/logs"}, ("http_endpoint",), "must be an http:// or https://"),
        (
            {"http_endpoint": "http://x", "headers": {"Content-Type": "t"}},
            ("headers",),
            "cannot contain the 'Content-Type' header",
        ),
        (
            {"http_endpoint": "http://u:p@x", "headers": {"Authorization": "t"}},
            (),
            "both an 'Authorization' header and user info",
        ),
        ({"http_endpoint": "http://x", "method": "GET"}, ("method",), "'POST', 'PUT' or 'PATCH'"),
        (
            {"http_endpoint": "http://x", "queue": {"max_batch_size": 0}},
            ("queue", "max_batch_size"),
            "greater than or equal to 1",
        ),
    ],
)
def test_config_errors_name_the_field(
    config: dict[str, Any], loc: tuple[object, ...], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        HttpLogConfig.model_validate(config)
    error = raised.value.errors()[0]
    assert error["loc"] == loc
    assert fragment in error["msg"]


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient, collector: Collector) -> None:
    gateway.load(gateway.service({"name": "http-log", "config": {"http_endpoint": collector.url}}))
    response = await client.get("/shop", params={"q": "1"}, headers={"authorization": "Bearer t"})
    assert response.status_code == 200
    _, _, entry = await collector.next()
    assert entry["request"]["uri"] == "/shop?q=1"
    assert entry["request"]["headers"]["authorization"] == "[REDACTED]"
    assert entry["response"]["status"] == 200
    assert entry["route"]["name"] == "all"
    assert entry["service"]["name"] == "echo"
    assert entry["latencies"]["proxy"] >= 0
    assert entry["latencies"]["request"] >= entry["latencies"]["proxy"]
    assert entry["source"] == "upstream"


async def test_traffic_traced(
    gateway: Gateway, client: httpx.AsyncClient, collector: Collector
) -> None:
    gateway.load(gateway.service({"name": "http-log", "config": {"http_endpoint": collector.url}}))
    gateway.trace_everything()
    assert (await client.get("/traced")).status_code == 200
    _, headers, entry = await collector.next()
    (spans,) = gateway.traces()
    by_id = {span.span_id: span for span in spans}
    (io,) = [span for span in spans if span.name == "gateway.io.http"]
    parent = by_id[io.parent_id]
    assert parent.name == "gateway.log.plugin.http-log"
    assert by_id[parent.parent_id].name == "gateway.log"
    assert parent.start_ns <= io.start_ns <= io.end_ns <= parent.end_ns
    assert (entry["trace_id"] == spans[0].span_id and False) or entry["trace_id"]
    assert headers["traceparent"].split("-")[2] == io.span_id.hex()
