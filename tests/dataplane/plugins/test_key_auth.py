"""key-auth: where keys are found, Kong's 401s, anonymous, hidden credentials, redaction."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataplane.gateway_config import Consumer, KeyAuthCredential, entity_id
from dataplane.plugins.host import PluginHost
from dataplane.plugins.key_auth import KeyAuthConfig, KeyAuthPlugin
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway

ALICE = Consumer(
    id="c-alice",
    username="alice",
    custom_id="A-1",
    keyauth_credentials=(KeyAuthCredential(key="alice-key"),),
)
GUEST = Consumer(id="c-guest", username="guest")


@pytest.fixture
def keyed_host(host: PluginHost) -> PluginHost:
    """A host whose config has Alice (with a key) and a guest consumer."""
    host.load_consumers([ALICE, GUEST])
    return host


def _plugin(host: PluginHost, **config: Any) -> KeyAuthPlugin:
    return KeyAuthPlugin(KeyAuthConfig.model_validate(config), plugin_id="ka", host=host)


async def test_key_in_header_identifies_the_consumer(
    keyed_host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(headers=[("apikey", "alice-key"), ("x-consumer-id", "spoofed")])
    assert await _plugin(keyed_host).access(exchange) is None
    assert exchange.consumer == ALICE
    assert exchange.credential_id == entity_id("keyauth_credential", "alice-key")
    headers = exchange.request_headers
    assert headers.get_all("x-consumer-id") == ["c-alice"]
    assert headers.get("x-consumer-username") == "alice"
    assert headers.get("x-consumer-custom-id") == "A-1"
    assert headers.get("x-credential-identifier") == exchange.credential_id
    assert "x-anonymous-consumer" not in headers
    assert headers.get("apikey") == "alice-key"  # hide_credentials is off
    assert {"apikey"} <= exchange.redact


async def test_key_in_query_and_hidden(
    keyed_host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(query=b"a=1&token=alice-key&b=2")
    plugin = _plugin(keyed_host, key_names=["X-Key", "token"], hide_credentials=True)
    assert await plugin.access(exchange) is None
    assert exchange.consumer == ALICE
    assert exchange.query_string == b"a=1&b=2"
    assert {"token", "x-key"} <= exchange.redact


async def test_key_in_body_only_when_enabled(
    keyed_host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    form = {"headers": [("content-type", "application/x-www-form-urlencoded")]}
    exchange = make_exchange(method="POST", body=b"apikey=alice-key", **form)  # type: ignore[arg-type]
    reply = await _plugin(keyed_host).access(exchange)
    assert reply is not None
    assert json.loads(reply.body)["message"] == "No API key found in request"

    exchange = make_exchange(method="POST", body=b"apikey=alice-key", **form)  # type: ignore[arg-type]
    assert await _plugin(keyed_host, key_in_body=True).access(exchange) is None
    assert exchange.consumer == ALICE

    exchange = make_exchange(
        method="POST",
        body=b'{"apikey": "alice-key"}',
        headers=[("content-type", "application/json")],
    )
    assert await _plugin(keyed_host, key_in_body=True).access(exchange) is None
    assert exchange.consumer == ALICE


@pytest.mark.parametrize(
    ("request_args", "message"),
    [
        ({}, "No API key found in request"),
        ({"headers": [("apikey", "")]}, "No API key found in request"),
        ({"headers": [("apikey", "nope")]}, "Invalid authentication credentials"),
        ({"query": b"apikey=a&apikey=b"}, "Duplicate API key found"),
    ],
)
async def test_rejections_are_kongs_401s(
    keyed_host: PluginHost,
    make_exchange: ExchangeFactory,
    request_args: dict[str, Any],
    message: str,
) -> None:
    exchange = make_exchange(**request_args)
    reply = await _plugin(keyed_host, realm="api").access(exchange)
    assert reply is not None
    assert reply.status == 401
    assert json.loads(reply.body) == {"message": message, "request_id": exchange.request_id}
    assert ("www-authenticate", 'Key realm="api"') in reply.headers
    assert exchange.consumer is None


async def test_header_is_searched_before_query_and_names_in_order(
    keyed_host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(headers=[("second", "alice-key")], query=b"first=wrong")
    reply = await _plugin(keyed_host, key_names=["first", "second"]).access(exchange)
    assert reply is not None  # "first" in the query wins over "second" in a header
    assert json.loads(reply.body)["message"] == "Invalid authentication credentials"


async def test_anonymous_consumer_when_authentication_fails(
    keyed_host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(headers=[("apikey", "nope")])
    assert await _plugin(keyed_host, anonymous="guest").access(exchange) is None
    assert exchange.consumer == GUEST
    assert exchange.credential_id is None
    assert exchange.request_headers.get("x-anonymous-consumer") == "true"
    assert "x-credential-identifier" not in exchange.request_headers

    missing = await _plugin(keyed_host, anonymous="nobody").access(make_exchange())
    assert missing is not None
    assert missing.status == 500
    assert "anonymous consumer nobody" in json.loads(missing.body)["message"]


async def test_anonymous_mode_skips_when_already_authenticated(
    keyed_host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange()
    exchange.consumer, exchange.credential_id = ALICE, "other-plugin-credential"
    assert await _plugin(keyed_host, anonymous="guest").access(exchange) is None
    assert exchange.consumer == ALICE


async def test_preflight_can_skip_authentication(
    keyed_host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    plugin = _plugin(keyed_host, run_on_preflight=False)
    assert await plugin.access(make_exchange(method="OPTIONS")) is None
    assert await plugin.access(make_exchange(method="GET")) is not None


@pytest.mark.parametrize(
    ("config", "loc", "fragment"),
    [
        ({"key_names": ["api key"]}, ("key_names", 0), "should match pattern"),
        ({"key_names": []}, ("key_names",), "at least 1 item"),
        ({"key_in_body": True, "hide_credentials": True}, (), "cannot be combined"),
        ({"keys": ["x"]}, ("keys",), "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(
    config: dict[str, Any], loc: tuple[object, ...], fragment: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        KeyAuthConfig.model_validate(config)
    error = raised.value.errors()[0]
    assert error["loc"] == loc
    assert fragment in error["msg"]


async def test_traffic_authenticates_and_redacts_the_key_in_traces(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    consumers = [
        {"username": "alice", "custom_id": "A-1", "keyauth_credentials": [{"key": "k-alice"}]}
    ]
    plugin = {"name": "key-auth", "config": {"key_names": ["apikey"], "hide_credentials": True}}
    gateway.load(gateway.service(plugin, consumers=consumers))
    gateway.trace_everything()

    missing = await client.get("/orders")
    assert missing.status_code == 401
    assert missing.json()["message"] == "No API key found in request"
    assert missing.headers["www-authenticate"] == "Key"

    wrong = await client.get("/orders", headers={"apikey": "nope"})
    assert (wrong.status_code, wrong.json()["message"]) == (
        401,
        "Invalid authentication credentials",
    )

    ok = await client.get("/orders", params={"apikey": "k-alice", "page": "2"})
    assert ok.status_code == 200
    upstream = ok.json()
    assert upstream["query"] == "page=2"  # hidden from the upstream
    sent = dict(upstream["headers"])
    assert sent["x-consumer-username"] == "alice"
    assert sent["x-consumer-custom-id"] == "A-1"

    header_key = await client.get("/orders", headers={"apikey": "k-alice"})
    assert "apikey" not in dict(header_key.json()["headers"])

    traces = gateway.traces()
    assert len(traces) == 4
    rejected_span = next(s for s in traces[0] if s.name == "gateway.access.plugin.key-auth")
    assert rejected_span.attributes["http.response.status_code"] == 401
    for spans in traces:
        for span in spans:
            for value in span.attributes.values():
                assert "k-alice" not in str(value)
    root = traces[2][0]
    assert root.attributes["gateway.consumer.id"] == sent["x-consumer-id"]


async def test_traffic_captured_headers_show_the_key_redacted(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    consumers = [{"username": "alice", "keyauth_credentials": [{"key": "k-alice"}]}]
    plugin = {"name": "key-auth", "config": {"key_names": ["X-Api-Key"]}}
    gateway.load(gateway.service(plugin, consumers=consumers))
    gateway.trace_everything(capture=("headers",))

    ok = await client.get("/", headers={"x-api-key": "k-alice"})
    assert ok.status_code == 200
    assert dict(ok.json()["headers"])["x-api-key"] == "k-alice"  # kept for the upstream
    (root, *_) = gateway.traces()[0]
    assert root.attributes["http.request.header.x-api-key"] == ["[REDACTED]"]
