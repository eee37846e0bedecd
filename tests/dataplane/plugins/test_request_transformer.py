"""request-transformer: headers and query string in Kong's order, method and URI; schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataplane.plugins.host import PluginHost
from dataplane.plugins.request_transformer import (
    RequestTransformerConfig,
    RequestTransformerPlugin,
)
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway


def _plugin(host: PluginHost, **config: Any) -> RequestTransformerPlugin:
    return RequestTransformerPlugin(
        RequestTransformerConfig.model_validate(config), plugin_id="rt", host=host
    )


async def test_headers(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    exchange = make_exchange(
        headers=[
            ("x-drop", "1"),
            ("x-old", "a"),
            ("x-old", "b"),
            ("x-replace", "old"),
            ("x-present", "kept"),
            ("x-multi", "first"),
        ]
    )
    plugin = _plugin(
        host,
        remove={"headers": ["X-Drop", "x-absent"]},
        rename={"headers": ["X-Old:X-New"]},
        replace={"headers": ["x-replace:new", "x-missing:never"]},
        add={"headers": ["x-present:ignored", "x-added:yes"]},
        append={"headers": ["x-multi:second", "x-fresh:1"]},
    )
    assert await plugin.access(exchange) is None
    headers = exchange.request_headers
    assert "x-drop" not in headers
    assert "x-old" not in headers
    assert headers.get_all("x-new") == ["a", "b"]
    assert headers.get("x-replace") == "new"
    assert "x-missing" not in headers
    assert headers.get("x-present") == "kept"
    assert headers.get("x-added") == "yes"
    assert headers.get_all("x-multi") == ["first", "second"]
    assert headers.get("x-fresh") == "1"


async def test_querystring(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    exchange = make_exchange(query=b"drop=1&old=a&rep=x&rep=y&keep=1&q=hello%20world")
    plugin = _plugin(
        host,
        remove={"querystring": ["drop"]},
        rename={"querystring": ["old:new"]},
        replace={"querystring": ["rep:z", "absent:never"]},
        add={"querystring": ["keep:ignored", "added:a b"]},
        append={"querystring": ["keep:2"]},
    )
    assert await plugin.access(exchange) is None
    assert exchange.query_args() == [
        ("new", "a"),
        ("rep", "z"),
        ("keep", "1"),
        ("q", "hello world"),
        ("added", "a b"),
        ("keep", "2"),
    ]


async def test_untouched_query_is_not_reencoded(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(query=b"a=b+c&d=%7E")
    await _plugin(host, add={"headers": ["x:1"]}).access(exchange)
    assert exchange.query_string == b"a=b+c&d=%7E"


async def test_method_and_uri(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    exchange = make_exchange(method="GET", path="/v1/things")
    await _plugin(host, http_method="POST", replace={"uri": "/internal/things"}).access(exchange)
    assert (exchange.method, exchange.upstream_path) == ("POST", "/internal/things")


@pytest.mark.parametrize(
    ("config", "loc", "fragment"),
    [
        ({"add": {"headers": ["x-no-value"]}}, ("add", "headers", 0), "must be 'name:value'"),
        ({"add": {"headers": ["bad name:1"]}}, ("add", "headers", 0), "not a valid header"),
        ({"rename": {"headers": ["a:b c"]}}, ("rename", "headers", 0), "not a valid header"),
        ({"add": {"querystring": ["a:$(headers.x)"]}}, ("add", "querystring", 0), "templates"),
        ({"add": {"body": ["a:1"]}}, ("add", "body"), "request body is not supported"),
        ({"http_method": "get"}, ("http_method",), "should match pattern"),
        ({"add": {"header": []}}, ("add", "header"), "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(
    config: dict[str, Any], loc: tuple[object, ...], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        RequestTransformerConfig.model_validate(config)
    error = raised.value.errors()[0]
    assert error["loc"] == loc
    assert fragment in error["msg"]


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    config = {
        "http_method": "PUT",
        "replace": {"uri": "/rewritten"},
        "remove": {"headers": ["x-secret"], "querystring": ["debug"]},
        "add": {"headers": ["x-added:1"], "querystring": ["source:gateway"]},
    }
    gateway.load(gateway.service({"name": "request-transformer", "config": config}))
    response = await client.get(
        "/original", params={"debug": "1", "a": "b"}, headers={"x-secret": "s"}
    )
    assert response.status_code == 200
    seen = response.json()
    assert (seen["method"], seen["path"], seen["query"]) == (
        "PUT",
        "/rewritten",
        "a=b&source=gateway",
    )
    headers = dict(seen["headers"])
    assert "x-secret" not in headers
    assert headers["x-added"] == "1"
