"""correlation-id: keep or generate an ID, send it upstream, echo it downstream."""

from __future__ import annotations

import re
import uuid

import httpx

from dataplane.plugins.correlation_id import CorrelationIdConfig, CorrelationIdPlugin
from dataplane.plugins.host import PluginHost
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway


def _plugin(host: PluginHost, **config: object) -> CorrelationIdPlugin:
    return CorrelationIdPlugin(
        CorrelationIdConfig.model_validate(config), plugin_id="cid", host=host
    )


async def test_generators(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    counted = [make_exchange() for _ in range(2)]
    plugin = _plugin(host)
    for exchange in counted:
        assert await plugin.access(exchange) is None
    first, second = (e.request_headers.get("kong-request-id") or "" for e in counted)
    prefix, _, number = first.partition("#")
    assert uuid.UUID(prefix)
    assert second == f"{prefix}#{int(number) + 1}"
    # A new config (new instance) continues the same counter.
    renewed = make_exchange()
    await _plugin(host).access(renewed)
    assert renewed.request_headers.get("kong-request-id") == f"{prefix}#{int(number) + 2}"

    plain = make_exchange()
    await _plugin(host, generator="uuid", header_name="X-Correlation").access(plain)
    assert uuid.UUID(plain.request_headers.get("x-correlation") or "")

    tracked = make_exchange()
    await _plugin(host, generator="tracker").access(tracked)
    assert re.fullmatch(
        rf"gateway\.test-8000-\d+-{tracked.request_id}-\d+\.\d{{3}}",
        tracked.request_headers.get("kong-request-id") or "",
    )


async def test_client_id_is_kept_and_echoed(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(headers=[("kong-request-id", "from-client")])
    plugin = _plugin(host, echo_downstream=True)
    await plugin.access(exchange)
    await plugin.header_filter(exchange)
    assert exchange.request_headers.get_all("kong-request-id") == ["from-client"]
    assert exchange.response_headers.get("kong-request-id") == "from-client"
    assert exchange.plugin_data["correlation_id"] == "from-client"


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    config = {"header_name": "X-Correlation-ID", "echo_downstream": True}
    gateway.load(gateway.service({"name": "correlation-id", "config": config}))
    response = await client.get("/")
    sent = dict(response.json()["headers"])["x-correlation-id"]
    assert response.headers["x-correlation-id"] == sent
    assert "#" in sent
