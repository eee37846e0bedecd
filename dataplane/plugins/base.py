"""What a plugin is: a pydantic config schema plus a handler with phase methods and a priority.

Like Kong, plugins run in fixed priority order (higher first). Like Envoy, an ``access`` handler
either continues (returns None) or answers locally by returning a :class:`LocalReply`; the
lifecycle, not the plugin, writes the response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from dataplane.exchange import Exchange
    from dataplane.plugins.host import PluginHost

__all__ = ["PHASES", "GatewayPlugin", "LocalReply", "PluginConfig", "json_object", "split_pair"]

PHASES = ("access", "header_filter", "body_filter", "log")


def split_pair(entry: str) -> tuple[str, str]:
    """A ``name:value`` config entry (Kong's transformer plugins) as ``(name, value)``."""
    name, _, value = entry.partition(":")
    return name, value


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed as a JSON object; None when it is not valid JSON or not an object."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


class PluginConfig(BaseModel):
    """Base of plugin config schemas: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ConfigT = TypeVar("ConfigT", bound=PluginConfig)


@dataclass(frozen=True, slots=True)
class LocalReply:
    """An answer the gateway gives itself instead of proxying."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    reason: str = field(default="", compare=False)  # outcome recorded on the plugin's span

    @classmethod
    def json(
        cls,
        status: int,
        payload: dict[str, Any],
        headers: tuple[tuple[str, str], ...] = (),
        reason: str = "",
    ) -> LocalReply:
        """A JSON answer."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, (("content-type", "application/json"), *headers), reason)


class GatewayPlugin(Generic[ConfigT]):
    """Base class of plugins; override only the phases the plugin runs in."""

    name: ClassVar[str]
    priority: ClassVar[int]
    config_model: ClassVar[type[PluginConfig]]

    def __init__(self, config: ConfigT, *, plugin_id: str, host: PluginHost) -> None:
        self.config = config
        self.plugin_id = plugin_id
        self.host = host

    async def access(self, exchange: Exchange) -> LocalReply | None:
        """Before proxying: inspect or change the request, or answer locally."""
        return None

    async def header_filter(self, exchange: Exchange) -> None:
        """Response status and headers are known: change them."""

    def body_filter(self, exchange: Exchange, chunk: bytes, last: bool) -> bytes:
        """Each response body chunk; return what to send (may buffer and return b"")."""
        return chunk

    async def log(self, exchange: Exchange) -> None:
        """After the response was sent."""

    async def close(self) -> None:
        """The config that created this instance was replaced: release resources."""

    def runs_in(self, phase: str) -> bool:
        """Whether this instance runs in ``phase``: by default, whether its class overrides
        it. A plugin whose handler does nothing under its config says so here, and the chain
        leaves it out of that phase (no call per request)."""
        return getattr(type(self), phase) is not getattr(GatewayPlugin, phase)
