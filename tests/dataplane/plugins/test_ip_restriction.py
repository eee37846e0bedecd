"""ip-restriction: allow/deny by address and CIDR range, deny first, Kong's answer."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from dataplane.plugins.host import PluginHost
from dataplane.plugins.ip_restriction import IpRestrictionConfig, IpRestrictionPlugin
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway


def _plugin(host: PluginHost, **config: object) -> IpRestrictionPlugin:
    return IpRestrictionPlugin(
        IpRestrictionConfig.model_validate(config), plugin_id="ip", host=host
    )


@pytest.mark.parametrize(
    ("config", "client_ip", "allowed"),
    [
        ({"allow": ["10.0.0.0/8"]}, "10.1.2.3", True),
        ({"allow": ["10.0.0.0/8"]}, "11.1.2.3", False),
        ({"allow": ["192.168.1.7"]}, "192.168.1.7", True),
        ({"deny": ["192.168.1.7", "172.16.0.0/12"]}, "172.20.0.1", False),
        ({"deny": ["192.168.1.7"]}, "192.168.1.8", True),
        ({"allow": ["10.0.0.0/8"], "deny": ["10.9.0.0/16"]}, "10.9.1.1", False),
        ({"allow": ["2001:db8::/32"]}, "2001:db8::1", True),
        ({"allow": ["2001:db8::/32"]}, "2001:db9::1", False),
        ({"allow": ["10.0.0.1"]}, "::ffff:10.0.0.1", True),  # IPv4-mapped counts as IPv4
        ({"allow": ["10.0.0.1"]}, "", False),  # no client address (unix socket)
    ],
)
async def test_allow_and_deny(
    host: PluginHost,
    make_exchange: ExchangeFactory,
    config: dict[str, object],
    client_ip: str,
    allowed: bool,
) -> None:
    reply = await _plugin(host, **config).access(make_exchange(client_ip=client_ip))
    assert (reply is None) is allowed


async def test_answer_is_kongs_with_the_request_id(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(client_ip="10.0.0.1")
    reply = await _plugin(host, deny=["10.0.0.0/24"]).access(exchange)
    assert reply is not None
    assert reply.status == 403
    assert json.loads(reply.body) == {
        "message": "IP address not allowed: 10.0.0.1",
        "request_id": exchange.request_id,
    }
    custom = await _plugin(host, deny=["10.0.0.1"], status=401, message="go away").access(exchange)
    assert custom is not None
    assert (custom.status, json.loads(custom.body)["message"]) == (401, "go away")


@pytest.mark.parametrize(
    ("config", "loc", "fragment"),
    [
        ({"allow": ["10.0.0.300"]}, ("allow", 0), "'10.0.0.300' is not an IP address or CIDR"),
        ({"deny": ["10.0.0.0/8", "10.0.0.0/33"]}, ("deny", 1), "not an IP address or CIDR"),
        ({}, (), "at least one of 'allow' or 'deny'"),
        ({"allow": ["10.0.0.1"], "whitelist": ["10.0.0.1"]}, ("whitelist",), "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(
    config: dict[str, object], loc: tuple[object, ...], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        IpRestrictionConfig.model_validate(config)
    error = raised.value.errors()[0]
    assert error["loc"] == loc
    assert fragment in error["msg"]


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    gateway.load(gateway.service({"name": "ip-restriction", "config": {"deny": ["127.0.0.1"]}}))
    denied = await client.get("/anything")
    assert denied.status_code == 403
    assert denied.json()["message"] == "IP address not allowed: 127.0.0.1"
    assert denied.json()["request_id"] == denied.headers["x-request-id"]

    gateway.load(gateway.service({"name": "ip-restriction", "config": {"allow": ["127.0.0.0/8"]}}))
    allowed = await client.get("/anything")
    assert allowed.status_code == 200
    assert allowed.json()["path"] == "/anything"
