"""request-size-limiting: Content-Length or buffered body against the limit; 413/417/411."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from dataplane.plugins.host import PluginHost
from dataplane.plugins.request_size_limiting import (
    RequestSizeLimitingConfig,
    RequestSizeLimitingPlugin,
)
from tests.dataplane.plugins.conftest import ExchangeFactory, Gateway


def _plugin(host: PluginHost, **config: Any) -> RequestSizeLimitingPlugin:
    return RequestSizeLimitingPlugin(
        RequestSizeLimitingConfig.model_validate(config), plugin_id="rsl", host=host
    )


@pytest.mark.parametrize(
    ("config", "headers", "body", "status"),
    [
        (
            {"allowed_payload_size": 10, "size_unit": "bytes"},
            [("content-length", "10")],
            None,
            None,
        ),
        ({"allowed_payload_size": 10, "size_unit": "bytes"}, [("content-length", "11")], None, 413),
        ({"allowed_payload_size": 1, "size_unit": "kilobytes"}, [], b"x" * 1025, 413),
        ({"allowed_payload_size": 1, "size_unit": "kilobytes"}, [], b"x" * 1024, None),
        ({"allowed_payload_size": 1}, [("content-length", str((1 << 20) + 1))], None, 413),
        (
            {"allowed_payload_size": 1, "size_unit": "bytes"},
            [("content-length", "2"), ("expect", "100-continue")],
            None,
            417,
        ),
        ({"require_content_length": True}, [], None, 411),
        ({"require_content_length": True}, [("transfer-encoding", "chunked")], None, None),
        ({}, [], None, None),
    ],
)
async def test_limits(
    host: PluginHost,
    make_exchange: ExchangeFactory,
    config: dict[str, Any],
    headers: list[tuple[str, str]],
    body: bytes | None,
    status: int | None,
) -> None:
    exchange = make_exchange(method="POST", headers=headers, body=body)
    reply = await _plugin(host, **config).access(exchange)
    assert (reply.status if reply is not None else None) == status
    if reply is not None:
        message = json.loads(reply.body)["message"]
        assert message in (
            "Request size limit exceeded",
            "A valid Content-Length header is required",
        )


async def test_streamed_body_gets_a_limit_for_the_lifecycle(
    host: PluginHost, make_exchange: ExchangeFactory
) -> None:
    exchange = make_exchange(method="POST", headers=[("transfer-encoding", "chunked")])
    plugin = _plugin(host, allowed_payload_size=2, size_unit="kilobytes")
    assert await plugin.access(exchange) is None
    assert exchange.request_body_limit == 2048


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        RequestSizeLimitingConfig.model_validate({"size_unit": "gigabytes"})
    error = raised.value.errors()[0]
    assert error["loc"] == ("size_unit",)
    assert "'megabytes', 'kilobytes' or 'bytes'" in error["msg"]


async def test_traffic(gateway: Gateway, client: httpx.AsyncClient) -> None:
    config = {"allowed_payload_size": 16, "size_unit": "bytes"}
    gateway.load(gateway.service({"name": "request-size-limiting", "config": config}))
    small = await client.post("/upload", content=b"x" * 16)
    assert (small.status_code, small.json()["body"]) == (200, "x" * 16)
    large = await client.post("/upload", content=b"x" * 17)
    assert large.status_code == 413
    assert large.json()["message"] == "Request size limit exceeded"


async def test_chunked_body_over_the_limit_is_refused_while_streaming(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    config = {"allowed_payload_size": 100, "size_unit": "bytes"}
    gateway.load(gateway.service({"name": "request-size-limiting", "config": config}))

    async def body(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 10):
            yield b"x" * 10

    small = await client.post("/upload", content=body(50))
    assert small.status_code == 200
    large = await client.post("/upload", content=body(500))
    assert large.status_code == 413
    assert large.json()["message"] == "Request size limit exceeded"
