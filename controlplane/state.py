"""The control plane's long-lived parts, shared by the HTTP API and the cluster endpoint."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from controlplane.clock import Clock, SystemClock
from controlplane.cluster.registry import NodeRegistry
from controlplane.db.engine import Database
from controlplane.metrics import ControlPlaneMetrics
from controlplane.otlp.forwarder import OtlpForwarder
from controlplane.otlp.receiver import TraceReceiver
from controlplane.settings import ControlPlaneSettings

__all__ = ["ControlPlane"]


@dataclass
class ControlPlane:
    """Settings, database, connected nodes and the clock of one control plane process."""

    settings: ControlPlaneSettings
    db: Database
    registry: NodeRegistry = field(default_factory=NodeRegistry)
    clock: Clock = field(default_factory=SystemClock)
    otlp_receiver: TraceReceiver = field(init=False)
    forwarder: OtlpForwarder | None = field(init=False, default=None)
    metrics: ControlPlaneMetrics = field(default_factory=ControlPlaneMetrics)

    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.otlp_receiver = TraceReceiver(self.db, metrics=self.metrics)
        endpoint = self.settings.forward_otlp_endpoint
        if endpoint:
            self.forwarder = OtlpForwarder(
                endpoint,
                metrics=self.metrics,
                max_queued_spans=self.settings.forward_max_queued_spans,
            )
            self.otlp_receiver.forward = self.forwarder.submit

    @property
    def retention(self) -> timedelta:
        """How long sessions and their traces are kept."""
        return timedelta(days=self.settings.retention_days)

    @property
    def heartbeat_timeout(self) -> timedelta:
        """A node that has not been heard of for this long is disconnected (3 heartbeats)."""
        return timedelta(seconds=3 * self.settings.heartbeat_interval_secs)
