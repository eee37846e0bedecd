"""A data plane node: the proxy, its config, the tracer and the stream to the control plane."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import socket
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import uvicorn

from dataplane.cluster.cache import load_cached_config, save_cached_config
from dataplane.cluster.client import ClusterClient
from dataplane.gateway_config import GatewayConfig
from dataplane.plugins.host import PluginHost
from dataplane.proxy import Proxy
from dataplane.runtime import GatewayRuntime
from dataplane.server import HttpServer
from dataplane.serving import EmbeddedServer, stop_on_signals
from dataplane.settings import DataPlaneSettings
from dataplane.status import status_app
from dataplane.tracing.export import SpanExport
from dataplane.tracing.otlp import resource
from dataplane.tracing.tracer import Tracer
from dataplane.transport import UpstreamTransport
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = [
    "HEAP_TRIM_THRESHOLD",
    "MMAP_THRESHOLD",
    "YOUNG_COLLECTION_THRESHOLD",
    "Node",
    "node_version",
    "serve",
    "tune_allocator",
    "tune_collector",
]

log = logging.getLogger(__name__)


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Container allocations (net of frees) that start a young-generation collection; CPython's
default is 700. A traced request allocates spans, their attribute dicts and event lists that
live across its awaits; with 32 requests in flight, 700 triggered ~14 young collections per
1,000 traced requests (~1.9 µs of collector time per traced request, charged to whatever
code allocated next). At 10,000 the same load triggers none: the count drifts up by ~0.3 per
traced request, since nearly everything a request makes is freed by reference counting. The
price is up to 10,000 more tracked objects (cyclic garbage) waiting for a collection."""


def tune_collector() -> None:
    """Set the young generation's threshold (the older generations keep CPython's)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


HEAP_TRIM_THRESHOLD = 16 << 20
"""Free memory at the top of glibc's heap kept rather than given back to the kernel (glibc's
default is 128 KB, raised as large blocks are freed). Span export cycles ~1 MB per batch (each
trace's encoded bytes until the flush, the joined batch, gRPC's copy), and a backlog while the
control plane is slow or away up to the export buffer (50,000 spans, ~11 MB): given back, that
memory was touched afresh the next time (~0.8 page faults per traced request after a backlog;
0.15-0.46 in bench.tracing, whose CPU figures did not move measurably). The price: up to 16 MB
of freed memory the process keeps."""

MMAP_THRESHOLD = 16 << 20
"""Blocks at least this large get their own mapping (glibc's default starts at 128 KB): setting
the trim threshold turns off glibc's own raising of both, so batches would otherwise be mapped
and unmapped one by one."""

_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> bool:
    """Keep the memory span export cycles through (see :data:`HEAP_TRIM_THRESHOLD`).

    Only with glibc (musl's ``mallopt`` does nothing and says so: False), and not when the
    operator tunes malloc through the environment (``GLIBC_TUNABLES``,
    ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``), which wins. Returns whether it
    applied.
    """
    if any(
        name in os.environ
        for name in ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):  # no C library to load, or one without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)
    )


def node_version() -> str:
    """The installed activetrace version."""
    try:
        return package_version("activetrace")
    except PackageNotFoundError:
        return "0.0.0"


class Node:
    """Everything one data plane process runs."""

    def __init__(self, settings: DataPlaneSettings) -> None:
        self.settings = settings
        self.version = node_version()
        self.export = SpanExport(
            node_resource=resource(
                {
                    "service.name": "activetrace-dataplane",
                    "service.version": self.version,
                    "service.instance.id": settings.node_id,
                    "host.name": socket.gethostname(),
                    "gateway.node.id": settings.node_id,
                }
            ),
            version=self.version,
            max_spans=settings.max_queued_spans,
            batch_spans=settings.export_batch_spans,
            flush_interval=settings.export_flush_interval_secs,
        )
        self.tracer = Tracer(self.export)
        self.transport = UpstreamTransport()
        self.plugin_host = PluginHost(
            node_id=settings.node_id,
            http_transport=self.transport,
            late_spans=self.tracer.export_late,
        )
        self.config_version = 0
        self.config_hash = ""
        self.proxy = Proxy(
            runtime=GatewayRuntime.build(GatewayConfig(), self.plugin_host),
            tracer=self.tracer,
            transport=self.transport,
            tracing=settings.tracing,
        )
        self.cluster = ClusterClient(
            settings,
            node=self,
            tracer=self.tracer,
            version=self.version,
            counters=self.heartbeat,
        )
        cached = load_cached_config(settings.cache_file)
        if cached is not None:
            log.info("starting from cached config version %d", cached.version)
            self._switch(cached, cached.version, cached.content_hash())

    def apply_config(self, config: GatewayConfig, version: int, hash_: str) -> None:
        """Switch to a config received from the control plane, and cache it."""
        config = config.model_copy(update={"version": version})
        self._switch(config, version, hash_)
        try:
            save_cached_config(self.settings.cache_file, config)
        except OSError as exc:
            log.warning("could not cache config: %s", exc)
        log.info("applied config version %d (%s)", version, hash_[:12])

    def _switch(self, config: GatewayConfig, version: int, hash_: str) -> None:
        old = self.proxy.runtime
        runtime = GatewayRuntime.build(config, self.plugin_host, previous=old)
        self.proxy.runtime = runtime  # requests in flight keep the runtime they started with
        self.tracer.sessions.set_routes(runtime.route_services)
        self.config_version = version
        self.config_hash = hash_
        for plugin in old.plugins:
            self.plugin_host.spawn(plugin.close())

    def heartbeat(self) -> pb.Heartbeat:
        """Counters reported to the control plane."""
        return pb.Heartbeat(
            requests=self.proxy.requests,
            traced=self.tracer.traced,
            spans_dropped=self.export.dropped,
            config_hash=self.config_hash,
            config_version=self.config_version,
            spans_queued=self.export.queued,
        )

    def status(self) -> dict[str, Any]:
        """What ``/status`` shows."""
        return {
            "node_id": self.settings.node_id,
            "version": self.version,
            "connected": self.cluster.connected.is_set(),
            "config_version": self.config_version,
            "config_hash": self.config_hash,
            "requests": self.proxy.requests,
            "traced": self.tracer.traced,
            "spans_queued": self.export.queued,
            "spans_dropped": self.export.dropped,
            "sessions": [
                {"id": s.id, "state": s.state, "samples": s.taken, "max_samples": s.max_samples}
                for s in self.tracer.sessions.sessions.values()
            ],
        }

    async def expire_sessions(self) -> None:
        """End sessions on this node's own clock, CP or no CP."""
        while True:
            self.tracer.sessions.expire_due()
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """Release connections and plugin resources."""
        for plugin in self.proxy.runtime.plugins:
            await plugin.close()
        await self.plugin_host.close()
        await self.transport.aclose()


async def serve(settings: DataPlaneSettings) -> None:
    """Run a node until SIGINT/SIGTERM."""
    node = Node(settings)
    proxy_server = HttpServer(
        node.proxy,
        settings.proxy_host,
        settings.proxy_port,
        keep_alive_timeout=settings.client_keepalive_timeout_secs,
        header_timeout=settings.client_header_timeout_secs,
        body_timeout=settings.client_body_timeout_secs,
        send_timeout=settings.client_send_timeout_secs,
    )
    status_server = EmbeddedServer(
        uvicorn.Config(
            status_app(node),
            host=settings.status_host,
            port=settings.status_port,
            loop="none",
            lifespan="off",
            log_config=None,
            access_log=False,
        )
    )
    stop_on_signals([proxy_server, status_server])
    background = [
        asyncio.create_task(node.cluster.run()),
        asyncio.create_task(node.export.run()),
        asyncio.create_task(node.expire_sessions()),
        asyncio.create_task(status_server.serve()),
    ]
    log.info(
        "node %s proxying on %s:%d, control plane %s",
        settings.node_id,
        settings.proxy_host,
        settings.proxy_port,
        settings.control_plane,
    )
    # Everything loaded so far (modules, config, compiled router) lives as long as the process:
    # moving it out of the collector's generations keeps full collections, and the pauses they
    # would add to request latency, proportional to per-request garbage only.
    gc.collect()
    gc.freeze()
    tune_collector()
    if not tune_allocator():
        log.info("malloc left as configured (tuned in the environment, or not glibc)")
    try:
        await proxy_server.serve()
    finally:
        status_server.should_exit = True
        for task in background[:3]:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await node.close()
        log.info("node %s stopped", settings.node_id)
