"""The node registry in SQL: hello, heartbeats, disconnects and the node list."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import Node, SessionTarget, TracingSessionRow
from controlplane.errors import NotFound
from controlplane.schemas import NodePublic
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = [
    "get_node",
    "list_nodes",
    "mark_disconnected",
    "mark_silent_nodes",
    "record_heartbeat",
    "register_node",
]


async def register_node(db: AsyncSession, hello: pb.Hello, *, now: datetime) -> None:
    """Create or refresh a node from its Hello and mark it connected."""
    node = await db.get(Node, hello.node_id)
    if node is None:
        node = Node(id=hello.node_id)
        db.add(node)
    node.hostname = hello.hostname
    node.version = hello.version
    node.labels = dict(hello.labels)
    node.status = "connected"
    node.connected_at = now
    node.last_seen = now
    node.config_hash = hello.config_hash
    node.config_version = hello.config_version
    await db.commit()


async def record_heartbeat(
    db: AsyncSession, node_id: str, heartbeat: pb.Heartbeat, *, now: datetime
) -> None:
    """Store a heartbeat's counters and the node's config hash."""
    await db.execute(
        update(Node)
        .where(Node.id == node_id)
        .values(
            status="connected",
            last_seen=now,
            requests=heartbeat.requests,
            traced=heartbeat.traced,
            spans_dropped=heartbeat.spans_dropped,
            config_hash=heartbeat.config_hash,
            config_version=heartbeat.config_version,
        )
    )
    await db.commit()


async def mark_disconnected(db: AsyncSession, node_id: str, *, now: datetime) -> None:
    """The node's stream ended."""
    await db.execute(
        update(Node).where(Node.id == node_id).values(status="disconnected", last_seen=now)
    )
    await db.commit()


async def mark_silent_nodes(db: AsyncSession, *, now: datetime, silence: timedelta) -> int:
    """Mark nodes that missed their heartbeats (3 intervals) as disconnected."""
    result = await db.execute(
        update(Node)
        .where(Node.status == "connected")
        .where(Node.last_seen < now - silence)
        .values(status="disconnected")
    )
    await db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


async def _active_sessions(db: AsyncSession) -> dict[str, list[str]]:
    rows = await db.execute(
        select(SessionTarget.node_id, SessionTarget.session_id)
        .join(TracingSessionRow, TracingSessionRow.id == SessionTarget.session_id)
        .where(TracingSessionRow.status.in_(("pending", "active")))
        .where(SessionTarget.state.in_(("pending", "active")))
    )
    out: dict[str, list[str]] = defaultdict(list)
    for node_id, session_id in rows:
        out[node_id].append(session_id)
    return out


def _public(node: Node, sessions: list[str]) -> NodePublic:
    return NodePublic(
        id=node.id,
        hostname=node.hostname,
        version=node.version,
        labels=dict(node.labels),
        status="connected" if node.status == "connected" else "disconnected",
        connected_at=node.connected_at,
        last_seen=node.last_seen,
        config_hash=node.config_hash,
        config_version=node.config_version,
        requests=node.requests,
        traced=node.traced,
        spans_dropped=node.spans_dropped,
        active_sessions=sorted(sessions),
    )


async def list_nodes(db: AsyncSession, *, status: str | None = None) -> list[NodePublic]:
    """Every node the control plane has seen, by ID."""
    query = select(Node).order_by(Node.id)
    if status is not None:
        query = query.where(Node.status == status)
    sessions = await _active_sessions(db)
    return [_public(n, sessions.get(n.id, [])) for n in await db.scalars(query)]


async def get_node(db: AsyncSession, node_id: str) -> NodePublic:
    """One node, or 404."""
    node = await db.get(Node, node_id)
    if node is None:
        raise NotFound(f"node {node_id!r} not found")
    return _public(node, (await _active_sessions(db)).get(node_id, []))
