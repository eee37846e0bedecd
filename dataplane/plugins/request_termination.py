"""request-termination: answer every request (or those carrying a trigger) with a fixed response.

Kong's plugin: a status with a JSON ``message``, a raw ``body`` with its ``content_type``, or
(``echo``) a copy of the request for debugging.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any, Final, Self

from pydantic import Field, model_validator

from dataplane.headers import host_without_port
from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

if TYPE_CHECKING:
    from dataplane.exchange import Exchange

__all__ = ["PLUGIN", "RequestTerminationConfig", "RequestTerminationPlugin"]

DEFAULT_MESSAGES: Final = {
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    500: "An unexpected error occurred",
    502: "Bad Gateway",
    503: "Service unavailable",
}


class RequestTerminationConfig(PluginConfig):
    """Kong's request-termination schema."""

    status_code: int = Field(default=503, ge=100, le=599)
    message: str | None = None
    content_type: str | None = None
    body: str | None = None
    echo: bool = False
    trigger: str | None = Field(default=None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.message and (self.content_type or self.body):
            raise ValueError("message cannot be used with content_type or body")
        if self.content_type and not self.body:
            raise ValueError("content_type requires a body")
        if self.echo and (self.content_type or self.body):
            raise ValueError("echo cannot be used with content_type and body")
        return self


class RequestTerminationPlugin(GatewayPlugin[RequestTerminationConfig]):
    """Answers in the access phase; with ``trigger``, only requests that carry it."""

    name = "request-termination"
    priority = 2
    config_model = RequestTerminationConfig

    async def access(self, exchange: Exchange) -> LocalReply | None:
        config = self.config
        if config.trigger is not None and not _triggered(exchange, config.trigger):
            return None
        status = config.status_code
        if config.echo:
            return LocalReply.json(status, self._echo(exchange), reason="echo")
        if config.body is not None:
            content_type = config.content_type or "application/json; charset=utf-8"
            return LocalReply(status, config.body.encode(), (("content-type", content_type),))
        message = config.message or DEFAULT_MESSAGES.get(status)
        if message is None:
            return LocalReply(status)
        return LocalReply.json(status, {"message": message, "request_id": exchange.request_id})

    def _echo(self, exchange: Exchange) -> dict[str, Any]:
        body = exchange.request_body
        raw_body = body.decode("utf-8", "replace") if body is not None else None
        return {
            "message": self.config.message or DEFAULT_MESSAGES.get(self.config.status_code),
            "gateway": {"node_id": self.host.node_id, "hostname": socket.gethostname()},
            "request": {
                "scheme": exchange.scheme,
                "host": host_without_port(exchange.host),
                "port": exchange.server_port,
                "method": exchange.method,
                "path": exchange.path,
                "headers": exchange.header_map(exchange.request_headers),
                "query": exchange.query_map(),
                "raw_body": raw_body,
                "body": _json_or_none(body),
                "id": exchange.request_id,
            },
            "matched_route": _dump(exchange.route),
            "matched_service": _dump(exchange.service),
        }


def _triggered(exchange: Exchange, trigger: str) -> bool:
    if trigger in exchange.request_headers:
        return True
    return any(name == trigger for name, _ in exchange.query_args())


def _json_or_none(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _dump(entity: Any) -> Any:
    return None if entity is None else entity.model_dump(mode="json")


PLUGIN = RequestTerminationPlugin
