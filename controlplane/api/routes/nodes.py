"""``/api/v1/nodes``: the data plane nodes the control plane has seen."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from controlplane.api.deps import DbSession
from controlplane.schemas import NodePublic
from controlplane.services import nodes

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/nodes", tags=["nodes"])


@router.get("", response_model=list[NodePublic])
async def list_nodes(
    db: DbSession, status: Literal["connected", "disconnected"] | None = None
) -> list[NodePublic]:
    """Every node, connected or not, with its last heartbeat and config hash."""
    return await nodes.list_nodes(db, status=status)


@router.get("/{node_id}", response_model=NodePublic)
async def get_node(db: DbSession, node_id: str) -> NodePublic:
    """One node."""
    return await nodes.get_node(db, node_id)
