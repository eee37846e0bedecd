"""Known plugins and their config schemas (placeholder until the plugin runtime lands)."""

from __future__ import annotations

from typing import Any

from dataplane.gateway_config import ConfigError

__all__ = ["BUILTIN_PLUGINS", "validate_plugin_config"]

BUILTIN_PLUGINS = (
    "key-auth",
    "rate-limiting",
    "request-transformer",
    "response-transformer",
    "cors",
    "ip-restriction",
    "request-size-limiting",
    "correlation-id",
    "request-termination",
    "http-log",
)


def validate_plugin_config(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` for plugin ``name``; raises :class:`ConfigError` with a location."""
    if name not in BUILTIN_PLUGINS:
        raise ConfigError(f"unknown plugin {name!r}", ("name",))
    return config
