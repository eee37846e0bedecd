"""request-termination: status with message, raw body, echo, trigger; schema rules."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataplane.plugins.host import PluginHost
from dataplane.plugins.request_termination import (
    RequestTerminationConfig,
    RequestTerminationPlugin,
)
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway


def _plugin(host: PluginHost, **config: Any) -> RequestTerminationPlugin:
    return RequestTerminationPlugin(
        RequestTerminationConfig.model_validate(config), plugin_id="rt", host=host
    )


async def test_default_answer(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    exchange = make_exchange()
    reply = await _plugin(host).access(exchange)
    assert reply is not None
    assert reply.status == 503
    assert json.loads(reply.body) == {
        "message": "Service unavailable",
        "request_id": exchange.request_id,
    }
    no_message = await _plugin(host, status_code=204).access(exchange)
    assert no_message is not None
    assert (no_message.status, no_message.body) == (204, b"")


async def test_raw_body(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    reply = await _plugin(
        host, status_code=418, body="<teapot/>", content_type="application/xml"
    ).access(make_exchange())
    assert reply is not None
    assert (reply.status, reply.body, reply.headers) == (
        418,
        b"<teapot/>",
        (("content-type", "application/xml"),),
    )


async def test_trigger_in_header_or_query(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    plugin = _plugin(host, trigger="x-stop")
    assert await plugin.access(make_exchange()) is None
    assert await plugin.access(make_exchange(headers=[("X-Stop", "1")])) is not None
    assert await plugin.access(make_exchange(query=b"x-stop")) is not None


async def test_echo_shows_the_request_with_secrets_redacted(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(
        method="POST",
        path="/debug",
        query=b"a=1&a=2",
        headers=[("authorization", "Bearer s"), ("x-a", "1")],
        body=b'{"k": true}',
    )
    reply = await _plugin(host, echo=True, status_code=200).access(exchange)
    assert reply is not None
    echoed = json.loads(reply.body)
    assert echoed["gateway"]["node_id"] == "dp-test"
    request = echoed["request"]
    assert (request["method"], request["path"], request["query"]) == (
        "POST",
        "/debug",
        {"a": ["1", "2"]},
    )
    assert request["headers"] == {"authorization": "[REDACTED]", "x-a": "1"}
    assert (request["body"], request["raw_body"]) == ({"k": True}, '{"k": true}')


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"message": "m", "body": "b"}, "message cannot be used with content_type or body"),
        ({"content_type": "text/plain"}, "content_type requires a body"),
        ({"echo": True, "body": "b"}, "echo cannot be used with content_type and body"),
        ({"status_code": 600}, "less than or equal to 599"),
    ],
)
def test_config_errors(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RequestTerminationConfig.model_validate(config)
    assert fragment in raised.value.errors()[0]["msg"]


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    config = {"status_code": 403, "message": "maintenance", "trigger": "x-maintenance"}
    gateway.load(gateway.service({"name": "request-termination", "config": config}))
    assert (await client.get("/")).status_code == 200
    stopped = await client.get("/", headers={"x-maintenance": "1"})
    assert (stopped.status_code, stopped.json()["message"]) == (403, "maintenance")
