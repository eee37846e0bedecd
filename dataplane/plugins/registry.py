"""The plugins this node knows: every module in ``dataplane.plugins`` that defines ``PLUGIN``.

Adding a plugin means adding one module here; nothing else needs to change.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from pydantic import ValidationError

import dataplane.plugins as plugins_package
from dataplane.gateway_config import ConfigError
from dataplane.plugins.base import GatewayPlugin

__all__ = ["plugin_classes", "validate_plugin_config"]

_INFRASTRUCTURE = frozenset({"base", "host", "registry", "runtime"})


@functools.cache
def plugin_classes() -> dict[str, type[GatewayPlugin[Any]]]:
    """Plugin name -> handler class, discovered once."""
    found: dict[str, type[GatewayPlugin[Any]]] = {}
    for module_info in pkgutil.iter_modules(plugins_package.__path__):
        if module_info.name in _INFRASTRUCTURE or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{plugins_package.__name__}.{module_info.name}")
        plugin = getattr(module, "PLUGIN", None)
        if plugin is not None:
            found[plugin.name] = plugin
    return found


def validate_plugin_config(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` with plugin ``name``'s schema; returns it with defaults filled in."""
    plugin = plugin_classes().get(name)
    if plugin is None:
        known = ", ".join(sorted(plugin_classes()))
        raise ConfigError(f"unknown plugin {name!r} (known: {known})", ("name",))
    try:
        model = plugin.config_model.model_validate(config)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ("config", *error["loc"])
        raise ConfigError(f"{error['msg']}", where) from None
    result: dict[str, Any] = model.model_dump(mode="json")
    return result
