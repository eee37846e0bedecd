"""cors: origin matching (plain, regex, *), preflight answers, response headers (Kong's rules)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataplane.plugins.cors import CorsConfig, CorsPlugin, OriginMatcher, normalise_origin
from dataplane.plugins.host import PluginHost
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway


def _plugin(host: PluginHost, **config: Any) -> CorsPlugin:
    return CorsPlugin(CorsConfig.model_validate(config), plugin_id="cors", host=host)


def test_normalise_origin_drops_default_ports() -> None:
    assert normalise_origin("https://example.com:443") == ("https://example.com", "example.com")
    assert normalise_origin("http://example.com:8080") == (
        "http://example.com:8080",
        "example.com",
    )
    assert normalise_origin("null") == ("null", "null")


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (["https://a.example"], "https://evil.example", "https://a.example"),  # fixed answer
        (["https://a.example", "https://b.example"], "https://b.example:443", "https://b.example"),
        (["https://a.example", "https://b.example"], "https://c.example", None),
        ([r"https://.*\.example\.com", "x"], "https://api.example.com", "https://api.example.com"),
        ([r"https://.*\.example\.com", "x"], "https://example.com.evil", None),
        ([r".*\.example\.com", "x"], "http://api.example.com:8080", "http://api.example.com:8080"),
        ([r"^https://b.*$", "x"], "https://beta.test", "https://beta.test"),
    ],
)
def test_origin_matching(origins: list[str], origin: str, allowed: str | None) -> None:
    assert OriginMatcher(tuple(origins)).allowed_origin(origin) == allowed


async def test_preflight_is_answered_locally(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    plugin = _plugin(
        host,
        origins=["https://app.example"],
        methods=["GET", "POST"],
        max_age=600,
        credentials=True,
        private_network=True,
    )
    exchange = make_exchange(
        method="OPTIONS",
        headers=[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "x-token,content-type"),
            ("access-control-request-private-network", "true"),
        ],
    )
    reply = await plugin.access(exchange)
    assert reply is not None
    assert reply.status == 200
    assert dict(reply.headers) == {
        "vary": "Origin",
        "access-control-allow-origin": "https://app.example",
        "access-control-allow-credentials": "true",
        "access-control-allow-headers": "x-token,content-type",
        "access-control-allow-methods": "GET,POST",
        "access-control-max-age": "600",
        "access-control-allow-private-network": "true",
    }
    # A proxied response to the same request would not get CORS headers again.
    await plugin.header_filter(exchange)
    assert len(exchange.response_headers) == 0


async def test_not_a_preflight_without_request_method(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    plugin = _plugin(host)
    plain_options = make_exchange(method="OPTIONS", headers=[("origin", "https://a")])
    assert await plugin.access(plain_options) is None


async def test_preflight_continue_goes_upstream(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(
        method="OPTIONS",
        headers=[("origin", "https://a.example"), ("access-control-request-method", "GET")],
    )
    assert await _plugin(host, preflight_continue=True).access(exchange) is None


@pytest.mark.parametrize(
    ("config", "origin", "expected"),
    [
        ({}, "https://a.example", {"access-control-allow-origin": "*"}),
        (
            {"credentials": True},
            "https://a.example",
            {
                "vary": "Origin",
                "access-control-allow-origin": "https://a.example",
                "access-control-allow-credentials": "true",
            },
        ),
        (
            {"origins": ["https://a.example", "https://b.example"], "exposed_headers": ["x-a"]},
            "https://z.example",
            {"vary": "Origin", "access-control-expose-headers": "x-a"},
        ),
    ],
)
async def test_response_headers(
    host: PluginHost,
    make_exchange: ExchangeFactory,
    config: dict[str, Any],
    origin: str,
    expected: dict[str, str],
) -> None:
    exchange = make_exchange(headers=[("origin", origin)])
    exchange.response_headers.add("access-control-allow-origin", "https://upstream-said")
    assert await _plugin(host, **config).access(exchange) is None
    await _plugin(host, **config).header_filter(exchange)
    assert dict(exchange.response_headers.items()) == expected


async def test_no_headers_without_origin_when_asked(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange()
    await _plugin(host, allow_origin_absent=False).header_filter(exchange)
    assert len(exchange.response_headers) == 0


@pytest.mark.parametrize(
    ("config", "loc", "fragment"),
    [
        ({"origins": ["https://ok", "(unclosed"]}, ("origins", 1), "not a valid regex"),
        ({"methods": ["FETCH"]}, ("methods", 0), "'GET', 'HEAD'"),
        ({"max_age": -1}, ("max_age",), "greater than or equal to 0"),
    ],
)
def test_config_errors_name_the_field(
    config: dict[str, Any], loc: tuple[object, ...], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        CorsConfig.model_validate(config)
    error = raised.value.errors()[0]
    assert error["loc"] == loc
    assert fragment in error["msg"]


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    config = {"origins": ["https://app.example"], "exposed_headers": ["x-total"]}
    gateway.load(gateway.service({"name": "cors", "config": config}))
    preflight = await client.options(
        "/items",
        headers={"origin": "https://app.example", "access-control-request-method": "PUT"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    actual = await client.get("/items", headers={"origin": "https://app.example"})
    assert actual.status_code == 200
    assert actual.json()["path"] == "/items"
    assert actual.headers["access-control-allow-origin"] == "https://app.example"
    assert actual.headers["access-control-expose-headers"] == "x-total"
    assert actual.headers["vary"] == "Origin"


async def test_gateway_answers_get_cors_headers_too(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    """A 401 from key-auth still runs header_filter, so browsers can read it (Kong)."""
    gateway.load(
        gateway.service(
            {"name": "cors", "config": {"origins": ["https://app.example"]}},
            {"name": "key-auth", "config": {}},
        )
    )
    rejected = await client.get("/items", headers={"origin": "https://app.example"})
    assert rejected.status_code == 401
    assert rejected.headers["access-control-allow-origin"] == "https://app.example"
    assert rejected.headers["content-length"] == str(len(rejected.content))
