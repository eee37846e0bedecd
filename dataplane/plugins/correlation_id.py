"""correlation-id: give each request an ID in a header, sent upstream and optionally echoed back.

Kong's plugin and generators: ``uuid``, ``uuid#counter`` (a per-process UUID and a counter, the
cheapest), ``tracker`` (server address and port, process, request ID and time).
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from dataplane.headers import host_without_port, raw_header
from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

if TYPE_CHECKING:
    from dataplane.exchange import Exchange
    from dataplane.plugins.host import PluginHost

__all__ = ["PLUGIN", "CorrelationIdConfig", "CorrelationIdPlugin"]

# The value other plugins read (http-log puts it in its entries as "correlation_id").
DATA_KEY = "correlation_id"


class CorrelationIdConfig(PluginConfig):
    """Kong's correlation-id schema."""

    header_name: str = Field(default="Kong-Request-ID", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    generator: Literal["uuid", "uuid#counter", "tracker"] = "uuid#counter"
    echo_downstream: bool = False


class CorrelationIdPlugin(GatewayPlugin[CorrelationIdConfig]):
    """Keeps a client's ID, or generates one; runs first (priority 100001) so others see it."""

    name = "correlation-id"
    priority = 100001
    config_model = CorrelationIdConfig

    def __init__(self, config: CorrelationIdConfig, *, plugin_id: str, host: PluginHost) -> None:
        super().__init__(config, plugin_id=plugin_id, host=host)
        # The counter outlives config changes, so IDs never repeat within a process.
        state = host.state("correlation-id")
        state.setdefault("prefix", str(uuid.uuid4()))
        state.setdefault("counter", itertools.count(1))
        self._prefix: str = state["prefix"]
        self._counter: itertools.count[int] = state["counter"]
        generators: dict[str, Callable[[Exchange], str]] = {
            "uuid": lambda _: str(uuid.uuid4()),
            "uuid#counter": self._uuid_counter,
            "tracker": _tracker,
        }
        self._generate = generators[config.generator]
        self._key = config.header_name.lower().encode("latin-1")  # as a HeaderList stores it

    def _uuid_counter(self, _: Exchange) -> str:
        return f"{self._prefix}#{next(self._counter)}"

    async def access(self, exchange: Exchange) -> LocalReply | None:
        headers = exchange.request_headers
        found = raw_header(headers.raw, self._key)
        if found:
            value = found.decode("latin-1")
        else:
            value = self._generate(exchange)
            if found is None:
                headers.raw.append((self._key, value.encode("latin-1")))
            else:  # present but empty: replaced
                headers.set_raw([(self._key, value.encode("latin-1"))])
        exchange.plugin_data[DATA_KEY] = value
        return None

    def runs_in(self, phase: str) -> bool:
        if phase == "header_filter":
            return self.config.echo_downstream
        return super().runs_in(phase)

    async def header_filter(self, exchange: Exchange) -> None:
        if not self.config.echo_downstream:
            return
        value = exchange.plugin_data.get(DATA_KEY) or self._generate(exchange)
        exchange.response_headers.set(self.config.header_name, value)


def _tracker(exchange: Exchange) -> str:
    host = host_without_port(exchange.host)
    return f"{host}-{exchange.server_port}-{os.getpid()}-{exchange.request_id}-{time.time():.3f}"


PLUGIN = CorrelationIdPlugin
