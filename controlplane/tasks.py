"""Background work of the control plane: ending due sessions and noticing silent nodes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from controlplane.metrics import ControlPlaneMetrics
from controlplane.services import nodes, retention, sessions
from controlplane.state import ControlPlane

__all__ = ["start_background_tasks"]

log = logging.getLogger(__name__)


async def _every(
    interval: float,
    name: str,
    job: Callable[[], Awaitable[object]],
    metrics: ControlPlaneMetrics | None = None,
) -> None:
    """Run ``job`` every ``interval`` seconds; a failure is logged and retried next time."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed; retrying in %.1fs", name, interval)
            if metrics is not None:
                metrics.db_errors.labels(name).inc()
        await asyncio.sleep(interval)


def start_background_tasks(cp: ControlPlane) -> list[asyncio.Task[None]]:
    """Start the periodic jobs; cancel the returned tasks at shutdown."""

    async def end_sessions() -> None:
        async with cp.db.session() as db:
            await sessions.end_due_sessions(db, cp.registry, now=cp.clock.now())

    async def silent_nodes() -> None:
        async with cp.db.session() as db:
            await nodes.mark_silent_nodes(db, now=cp.clock.now(), silence=cp.heartbeat_timeout)

    async def purge() -> None:
        deleted = await retention.purge_expired(cp.db, now=cp.clock.now())
        if deleted:
            log.info("retention: deleted %d expired sessions with their traces", deleted)

    async def join_late() -> None:
        await cp.otlp_receiver.join_late()

    forwarding = [asyncio.create_task(cp.forwarder.run())] if cp.forwarder is not None else []
    return [
        *forwarding,
        asyncio.create_task(
            _every(cp.settings.retention_interval_secs, "retention", purge, cp.metrics)
        ),
        asyncio.create_task(_every(0.5, "otlp-late-join", join_late, cp.metrics)),
        asyncio.create_task(_every(0.5, "end-sessions", end_sessions, cp.metrics)),
        asyncio.create_task(
            _every(cp.settings.heartbeat_interval_secs, "silent-nodes", silent_nodes, cp.metrics)
        ),
    ]
