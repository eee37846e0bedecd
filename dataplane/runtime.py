"""A config compiled for the request path: router, services, balancers and plugin chains.

Built once per config version; the proxy reads one runtime per request, so a new config takes
effect for new requests while in-flight ones finish with the one they started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dataplane.balancer import Balancer
from dataplane.gateway_config import GatewayConfig, Service
from dataplane.plugins.base import GatewayPlugin
from dataplane.plugins.host import PluginHost
from dataplane.plugins.runtime import PluginChain, build_chains
from dataplane.router import Router
from dataplane.router.candidate import Upstream

__all__ = ["GatewayRuntime"]


@dataclass
class GatewayRuntime:
    """Everything the proxy needs to serve requests with one config version."""

    config: GatewayConfig
    hash: str
    router: Router
    chains: dict[str, PluginChain]
    plugins: list[GatewayPlugin[Any]]
    balancers: dict[str, Balancer]
    route_services: dict[str, str] = field(default_factory=dict)
    # Per service ID: its timeouts in seconds, as the upstream transport takes them.
    timeouts: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        config: GatewayConfig,
        host: PluginHost,
        previous: GatewayRuntime | None = None,
    ) -> GatewayRuntime:
        """Compile ``config``; balancers of unchanged upstreams keep their health state."""
        services = config.service_by_id()
        host.load_consumers(config.consumers)
        chains, plugins = build_chains(config, host)
        old = previous.balancers if previous is not None else {}
        balancers: dict[str, Balancer] = {}
        for upstream in config.upstreams:
            kept = old.get(upstream.name)
            balancers[upstream.name] = (
                kept if kept is not None and kept.upstream == upstream else Balancer(upstream)
            )
        return cls(
            config=config,
            hash=config.content_hash(),
            router=Router.build(config.routes, services),
            chains=chains,
            plugins=plugins,
            balancers=balancers,
            route_services={r.id: r.service_id for r in config.routes},
            timeouts={service.id: _timeouts(service) for service in config.services},
        )

    def balancer_for(self, upstream: Upstream) -> Balancer | None:
        """The balancer when the service's host names an upstream; None for a plain host."""
        return self.balancers.get(upstream.host)

    def timeouts_for(self, upstream: Upstream) -> dict[str, float]:
        """The service's connect/read/write/pool timeouts in seconds."""
        return self.timeouts[upstream.service_id]


def _timeouts(service: Service) -> dict[str, float]:
    return {
        "connect": service.connect_timeout / 1000,
        "read": service.read_timeout / 1000,
        "write": service.write_timeout / 1000,
        "pool": service.connect_timeout / 1000,
    }
