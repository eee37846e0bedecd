"""An in-process control plane (real database, real FastAPI app) for API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from controlplane.app import create_app
from controlplane.clock import Clock
from controlplane.db.engine import Database
from controlplane.services import nodes
from controlplane.services.config import current_config, save_config
from controlplane.settings import ControlPlaneSettings
from controlplane.state import ControlPlane
from dataplane.gateway_config import GatewayConfig, normalise_declarative
from protos.activetrace.cluster.v1 import cluster_pb2 as pb


class FakeClock(Clock):
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        """The time set by the test."""
        return self.current


DEMO = {
    "services": [
        {
            "name": "demo",
            "url": "http://127.0.0.1:9",
            "routes": [
                {"name": "demo", "paths": ["/demo"]},
                {"name": "orders", "paths": ["/demo/orders"]},
            ],
        }
    ]
}


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at a fixed time."""
    return FakeClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))


@pytest.fixture
async def control_plane(db: Database, clock: FakeClock) -> ControlPlane:
    """A ControlPlane over a migrated database, with two known nodes and the demo config."""
    cp = ControlPlane(settings=ControlPlaneSettings(database_url=db.url), db=db, clock=clock)
    cp.ready.set()
    async with db.session() as session:
        for node_id in ("dp-1", "dp-2"):
            await nodes.register_node(
                session, pb.Hello(node_id=node_id, hostname="h", version="0.1.0"), now=clock.now()
            )
        config = GatewayConfig.load(normalise_declarative(DEMO))
        current = await current_config(session)
        await save_config(
            session,
            cp.registry,
            config,
            change="test",
            now=clock.now(),
            expected_version=current.version,
        )
    return cp


@pytest.fixture
async def api(control_plane: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the in-process API."""
    transport = httpx.ASGITransport(app=create_app(control_plane))
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
        yield client
