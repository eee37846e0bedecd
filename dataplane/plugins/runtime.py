"""Plugin chains: which plugin instances run for a route, per phase, in priority order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dataplane.gateway_config import GatewayConfig, Plugin
from dataplane.plugins.base import GatewayPlugin
from dataplane.plugins.host import PluginHost
from dataplane.plugins.registry import plugin_classes

__all__ = ["PluginChain", "build_chains"]


@dataclass(frozen=True, slots=True)
class PluginChain:
    """The plugins of one route, per phase, highest priority first."""

    access: tuple[GatewayPlugin[Any], ...] = ()
    header_filter: tuple[GatewayPlugin[Any], ...] = ()
    body_filter: tuple[GatewayPlugin[Any], ...] = ()
    log: tuple[GatewayPlugin[Any], ...] = ()

    @classmethod
    def of(cls, plugins: list[GatewayPlugin[Any]]) -> PluginChain:
        """Sort by priority (Kong order: higher first; name breaks ties) and split by phase."""
        ordered = sorted(plugins, key=lambda p: (-p.priority, p.name))
        return cls(
            *(
                tuple(p for p in ordered if p.runs_in(phase))
                for phase in ("access", "header_filter", "body_filter", "log")
            )
        )


EMPTY_CHAIN = PluginChain()


def _specificity(plugin: Plugin, route_id: str, service_id: str) -> int | None:
    """How specifically ``plugin`` applies to the route (higher wins); None if it does not."""
    if plugin.route_id is not None and plugin.route_id != route_id:
        return None
    if plugin.service_id is not None and plugin.service_id != service_id:
        return None
    return (2 if plugin.route_id is not None else 0) + (1 if plugin.service_id is not None else 0)


def build_chains(
    config: GatewayConfig, host: PluginHost
) -> tuple[dict[str, PluginChain], list[GatewayPlugin[Any]]]:
    """Instantiate every enabled plugin and pick, per route and plugin name, the most specific."""
    classes = plugin_classes()
    instances: dict[str, GatewayPlugin[Any]] = {}
    for plugin in config.plugins:
        if plugin.enabled:
            cls = classes[plugin.name]
            instances[plugin.id] = cls(
                cls.config_model.model_validate(plugin.config), plugin_id=plugin.id, host=host
            )
    chains: dict[str, PluginChain] = {}
    for route in config.routes:
        chosen: dict[str, tuple[int, Plugin]] = {}
        for plugin in config.plugins:
            if not plugin.enabled:
                continue
            rank = _specificity(plugin, route.id, route.service_id)
            if rank is not None and (plugin.name not in chosen or rank > chosen[plugin.name][0]):
                chosen[plugin.name] = (rank, plugin)
        chains[route.id] = PluginChain.of([instances[p.id] for _, p in chosen.values()])
    return chains, list(instances.values())
