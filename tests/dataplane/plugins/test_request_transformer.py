"""request-transformer: headers, query string and body in Kong's order, method and URI;
schema."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

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
        ({"add": {"body": ["a:$(query_params.x)"]}}, ("add", "body", 0), "templates"),
        ({"rename": {"body": ["no-new-name"]}}, ("rename", "body", 0), "must be 'name:value'"),
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


BODY_RULES: dict[str, Any] = {
    "remove": {"body": ["secret"]},
    "rename": {"body": ["old:new"]},
    "replace": {"body": ["mode:replaced", "absent:never"]},
    "add": {"body": ["mode:ignored", "source:gateway"]},
    "append": {"body": ["tags:b", "fresh:1"]},
}


async def test_json_body(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    body = {"secret": "s", "old": 1, "mode": "m", "tags": "a", "nested": {"k": [1, 2]}}
    exchange = make_exchange(
        method="POST",
        headers=[("content-type", "application/json; charset=utf-8")],
        body=json.dumps(body).encode(),
    )
    await _plugin(host, **BODY_RULES).access(exchange)
    assert exchange.request_body is not None
    assert json.loads(exchange.request_body) == {
        "new": 1,
        "mode": "replaced",
        "tags": ["a", "b"],
        "nested": {"k": [1, 2]},
        "source": "gateway",
        "fresh": "1",
    }


async def test_form_body(host: PluginHost, make_exchange: ExchangeFactory) -> None:
    exchange = make_exchange(
        method="POST",
        headers=[("content-type", "application/x-www-form-urlencoded")],
        body=b"secret=s&old=1&mode=m&mode=n&tags=a&q=hello+world",
    )
    await _plugin(host, **BODY_RULES).access(exchange)
    assert exchange.request_body is not None
    assert parse_qsl(exchange.request_body.decode(), keep_blank_values=True) == [
        ("new", "1"),
        ("mode", "replaced"),
        ("tags", "a"),
        ("q", "hello world"),
        ("source", "gateway"),
        ("tags", "b"),
        ("fresh", "1"),
    ]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"[1, 2]"),  # not an object
        ("application/json", b"{not json"),
        ("multipart/form-data; boundary=x", b"--x\r\n"),
        ("text/plain", b"secret=s"),
        (None, b"secret=s"),
    ],
)
async def test_other_bodies_are_left_alone(
    host: PluginHost, make_exchange: ExchangeFactory, content_type: str | None, body: bytes
) -> None:
    headers = [("content-type", content_type)] if content_type else []
    exchange = make_exchange(method="POST", headers=headers, body=body)
    await _plugin(host, **BODY_RULES).access(exchange)
    assert exchange.request_body is body


async def test_a_json_body_nothing_changes_keeps_its_bytes(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    body = b'{ "a" : 1 }'
    exchange = make_exchange(
        method="POST", headers=[("content-type", "application/json")], body=body
    )
    await _plugin(host, remove={"body": ["absent"]}).access(exchange)
    assert exchange.request_body is body


async def test_add_creates_a_body_only_remove_does_not(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    json_type = [("content-type", "application/json")]
    created = make_exchange(method="POST", headers=json_type)
    await _plugin(host, add={"body": ["a:1"]}).access(created)
    assert created.request_body == b'{"a":"1"}'
    untouched = make_exchange(method="POST", headers=json_type)
    await _plugin(host, remove={"body": ["a"]}).access(untouched)
    assert untouched.request_body is None


async def test_a_streamed_body_is_left_alone(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(
        method="POST",
        headers=[("content-type", "application/json"), ("transfer-encoding", "chunked")],
    )
    await _plugin(host, add={"body": ["a:1"]}).access(exchange)
    assert exchange.request_body is None


async def test_get_moves_a_form_body_into_the_query(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(
        method="POST",
        query=b"a=1",
        headers=[("content-type", "application/x-www-form-urlencoded")],
        body=b"b=2&a=3",
    )
    await _plugin(host, http_method="GET").access(exchange)
    assert exchange.method == "GET"
    assert exchange.query_args() == [("a", "1"), ("b", "2"), ("a", "3")]


async def test_body_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    gateway.load(gateway.service({"name": "request-transformer", "config": BODY_RULES}))
    sent = {"secret": "s", "old": "o", "mode": "m", "tags": "a"}
    response = await client.post("/echo", json=sent)
    assert response.status_code == 200
    seen = response.json()
    assert json.loads(seen["body"]) == {
        "new": "o",
        "mode": "replaced",
        "tags": ["a", "b"],
        "source": "gateway",
        "fresh": "1",
    }
    headers = dict(seen["headers"])
    assert int(headers["content-length"]) == len(seen["body"].encode())
    form = await client.post("/echo", data={"secret": "s", "keep": "k"})
    assert parse_qsl(form.json()["body"]) == [
        ("keep", "k"),
        ("mode", "ignored"),  # absent from this body: add applies
        ("source", "gateway"),
        ("tags", "b"),
        ("fresh", "1"),
    ]
