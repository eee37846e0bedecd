"""ip-restriction: allow or deny clients by IP address or CIDR range (Kong's plugin)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

if TYPE_CHECKING:
    from dataplane.exchange import Exchange
    from dataplane.plugins.host import PluginHost

__all__ = ["PLUGIN", "IpRestrictionConfig", "IpRestrictionPlugin", "NetworkSet"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip_or_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR range") from None
    return value


IpOrCidr = Annotated[str, AfterValidator(_ip_or_cidr)]


class IpRestrictionConfig(PluginConfig):
    """Kong's ip-restriction schema: ``allow`` and/or ``deny`` lists, answer when rejected."""

    allow: tuple[IpOrCidr, ...] | None = None
    deny: tuple[IpOrCidr, ...] | None = None
    status: int | None = Field(default=None, ge=100, le=599)
    message: str | None = None

    @model_validator(mode="after")
    def _one_list(self) -> Self:
        if not self.allow and not self.deny:
            raise ValueError("at least one of 'allow' or 'deny' must be given")
        return self


class NetworkSet:
    """IP addresses and CIDR ranges compiled once: single addresses in a set, ranges scanned."""

    __slots__ = ("_addresses", "_networks")

    def __init__(self, entries: tuple[str, ...]) -> None:
        networks = [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries]
        self._addresses = frozenset(n.network_address for n in networks if n.num_addresses == 1)
        self._networks: tuple[Network, ...] = tuple(n for n in networks if n.num_addresses > 1)

    def __bool__(self) -> bool:
        return bool(self._addresses or self._networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        if address in self._addresses:
            return True
        return any(address in network for network in self._networks)


def client_address(text: str) -> Address | None:
    """The client's address (an IPv4-mapped IPv6 address counts as IPv4); None if unknown."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class IpRestrictionPlugin(GatewayPlugin[IpRestrictionConfig]):
    """Rejects a client that is denied, or not allowed (deny is checked first, as in Kong)."""

    name = "ip-restriction"
    priority = 990
    config_model = IpRestrictionConfig

    def __init__(self, config: IpRestrictionConfig, *, plugin_id: str, host: PluginHost) -> None:
        super().__init__(config, plugin_id=plugin_id, host=host)
        self._allow = NetworkSet(config.allow or ())
        self._deny = NetworkSet(config.deny or ())

    async def access(self, exchange: Exchange) -> LocalReply | None:
        address = client_address(exchange.client_ip)
        if address is None:
            return self._reject(exchange, 403, "Cannot identify the client IP address", "no_ip")
        if self._deny and address in self._deny:
            return self._reject(exchange, None, None, "denied")
        if self._allow and address not in self._allow:
            return self._reject(exchange, None, None, "not_allowed")
        return None

    def _reject(
        self, exchange: Exchange, status: int | None, message: str | None, reason: str
    ) -> LocalReply:
        status = status or self.config.status or 403
        message = message or self.config.message or f"IP address not allowed: {exchange.client_ip}"
        body = {"message": message, "request_id": exchange.request_id}
        return LocalReply.json(status, body, reason=reason)


PLUGIN = IpRestrictionPlugin
