"""response-transformer: headers, buffered JSON body changes with json_types; schema."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataplane.plugins.host import PluginHost
from dataplane.plugins.response_transformer import (
    ResponseTransformerConfig,
    ResponseTransformerPlugin,
    transform_json,
)
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway


def _config(**config: Any) -> ResponseTransformerConfig:
    return ResponseTransformerConfig.model_validate(config)


def test_json_transformations_in_kongs_order() -> None:
    config = _config(
        remove={"json": ["secret"]},
        rename={"json": ["old:new"]},
        replace={"json": ["count:7", "missing:1"], "json_types": ["number"]},
        add={
            "json": ["flag:true", "name:x", "ratio:0.5"],
            "json_types": ["boolean", "string", "number"],
        },
        append={"json": ["tags:b", "fresh:1"]},
    )
    body = json.dumps({"secret": 1, "old": "v", "count": 1, "name": "kept", "tags": ["a"]})
    out = transform_json(config, body.encode())
    assert out is not None
    assert json.loads(out) == {
        "new": "v",
        "count": 7,
        "name": "kept",
        "tags": ["a", "b"],
        "flag": True,
        "ratio": 0.5,
        "fresh": ["1"],
    }
    assert transform_json(config, b"[1, 2]") is None
    assert transform_json(config, b"not json") is None


async def test_headers_and_streamed_body(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    plugin = ResponseTransformerPlugin(
        _config(
            remove={"headers": ["x-powered-by"]},
            rename={"headers": ["x-old:x-new"]},
            replace={"headers": ["server:gateway"]},
            add={"headers": ["x-added:1", "server:never"], "json": ["added:yes"]},
            append={"headers": ["x-multi:2"]},
        ),
        plugin_id="rt",
        host=host,
    )
    exchange = make_exchange()
    for name, value in [
        ("content-type", "application/vnd.api+json; charset=utf-8"),
        ("content-length", "14"),
        ("x-powered-by", "php"),
        ("x-old", "o"),
        ("server", "upstream"),
        ("x-multi", "1"),
    ]:
        exchange.response_headers.add(name, value)
    await plugin.header_filter(exchange)
    headers = exchange.response_headers
    assert "x-powered-by" not in headers
    assert "content-length" not in headers  # the body changes
    assert (headers.get("x-new"), headers.get("server")) == ("o", "gateway")
    assert headers.get("x-added") == "1"
    assert headers.get_all("x-multi") == ["1", "2"]
    assert plugin.body_filter(exchange, b'{"a":', False) == b""
    assert json.loads(plugin.body_filter(exchange, b" 1}", True)) == {"a": 1, "added": "yes"}


async def test_other_bodies_stream_untouched(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    plugin = ResponseTransformerPlugin(_config(add={"json": ["a:1"]}), plugin_id="rt", host=host)
    exchange = make_exchange()
    exchange.response_headers.add("content-type", "text/plain")
    exchange.response_headers.add("content-length", "5")
    await plugin.header_filter(exchange)
    assert exchange.response_headers.get("content-length") == "5"
    assert plugin.body_filter(exchange, b"hello", False) == b"hello"
    assert plugin.body_filter(exchange, b"", True) == b""


@pytest.mark.parametrize(
    ("config", "loc", "fragment"),
    [
        ({"add": {"json": ["novalue"]}}, ("add", "json", 0), "must be 'name:value'"),
        (
            {"add": {"json": ["a:1"], "json_types": ["int"]}},
            ("add", "json_types", 0),
            "'boolean', 'number' or 'string'",
        ),
        ({"add": {"json_types": ["number"]}}, ("add",), "json_types has more entries"),
        ({"remove": {"headers": ["bad header"]}}, ("remove", "headers", 0), "not a valid header"),
        ({"remove": {"body": []}}, ("remove", "body"), "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(
    config: dict[str, Any], loc: tuple[object, ...], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        _config(**config)
    error = raised.value.errors()[0]
    assert error["loc"] == loc
    assert fragment in error["msg"]


def test_config_round_trips_with_kongs_field_names() -> None:
    raw = {"add": {"json": ["a:1"], "json_types": ["number"]}, "remove": {"json": ["b"]}}
    dumped = _config(**raw).model_dump(mode="json")
    assert dumped["add"]["json"] == ["a:1"]
    assert dumped["remove"] == {"headers": [], "json": ["b"]}
    assert _config(**dumped) == _config(**raw)


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    config = {
        "remove": {"json": ["headers", "body"], "headers": ["x-internal"]},
        "add": {"json": ["via_gateway:true"], "json_types": ["boolean"], "headers": ["x-added:1"]},
    }
    gateway.load(gateway.service({"name": "response-transformer", "config": config}))
    response = await client.get(
        "/p", headers={"x-upstream-headers": json.dumps([["x-internal", "1"]])}
    )
    assert response.status_code == 200
    assert response.json() == {"method": "GET", "path": "/p", "query": "", "via_gateway": True}
    assert "x-internal" not in response.headers
    assert response.headers["x-added"] == "1"
