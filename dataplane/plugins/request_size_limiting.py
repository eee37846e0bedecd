"""request-size-limiting: reject request bodies over a size (Kong's plugin).

The size comes from ``Content-Length``, or from the body when the gateway buffered it. A chunked
body streams to the upstream after the access phase: the plugin sets
``exchange.request_body_limit`` for the lifecycle to enforce while streaming.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from pydantic import Field

from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

if TYPE_CHECKING:
    from dataplane.exchange import Exchange

__all__ = ["PLUGIN", "RequestSizeLimitingConfig", "RequestSizeLimitingPlugin"]

UNIT_BYTES: Final = {"megabytes": 1 << 20, "kilobytes": 1 << 10, "bytes": 1}


class RequestSizeLimitingConfig(PluginConfig):
    """Kong's request-size-limiting schema."""

    allowed_payload_size: int = Field(default=128, ge=0)
    size_unit: Literal["megabytes", "kilobytes", "bytes"] = "megabytes"
    require_content_length: bool = False

    @property
    def allowed_bytes(self) -> int:
        """The limit in bytes."""
        return self.allowed_payload_size * UNIT_BYTES[self.size_unit]


class RequestSizeLimitingPlugin(GatewayPlugin[RequestSizeLimitingConfig]):
    """413 (417 for ``Expect: 100-continue``) over the limit; 411 without a length if required."""

    name = "request-size-limiting"
    priority = 951
    config_model = RequestSizeLimitingConfig

    async def access(self, exchange: Exchange) -> LocalReply | None:
        headers = exchange.request_headers
        length_header = (headers.get("content-length") or "").strip()
        if length_header.isdigit():
            size: int | None = int(length_header)
        elif exchange.request_body is not None:
            size = len(exchange.request_body)
        else:
            size = None
        if size is None:
            exchange.request_body_limit = self.config.allowed_bytes
            chunked = "chunked" in (headers.get("transfer-encoding") or "").lower()
            if self.config.require_content_length and not chunked:
                return _error(exchange, 411, "A valid Content-Length header is required")
            return None
        if size <= self.config.allowed_bytes:
            return None
        expect = (headers.get("expect") or "").strip().lower()
        return _error(
            exchange, 417 if expect == "100-continue" else 413, "Request size limit exceeded"
        )


def _error(exchange: Exchange, status: int, message: str) -> LocalReply:
    body = {"message": message, "request_id": exchange.request_id}
    return LocalReply.json(status, body, reason=message)


PLUGIN = RequestSizeLimitingPlugin
