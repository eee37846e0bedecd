"""``/api/v1/upstreams``: load-balanced virtual hosts and their targets."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from controlplane.api.deps import ControlPlaneDep, DbSession
from controlplane.api.routes.crud import (
    ERRORS,
    EntityBody,
    crud_router,
    deleted,
    entity_answer,
    page_answer,
)
from controlplane.schemas import EntityList
from controlplane.services import entities
from controlplane.services.entities import UPSTREAMS

__all__ = ["router"]

router = crud_router(UPSTREAMS)


@router.get("/{id_or_name}/targets", response_model=EntityList, responses=ERRORS)
async def list_targets(
    request: Request, response: Response, db: DbSession, id_or_name: str
) -> EntityList:
    """The targets of an upstream."""
    page = await entities.list_targets(db, upstream=id_or_name)
    return page_answer(request, response, page)


@router.post("/{id_or_name}/targets", status_code=201, responses=ERRORS)
async def add_target(
    cp: ControlPlaneDep, db: DbSession, response: Response, id_or_name: str, body: EntityBody
) -> dict[str, Any]:
    """Add a ``host:port`` target (``weight`` 0..65535, default 100)."""
    result = await entities.add_target(
        db, cp.registry, upstream=id_or_name, fields=body, now=cp.clock.now()
    )
    return entity_answer(response, result)


@router.delete("/{id_or_name}/targets/{target}", status_code=204, responses=ERRORS)
async def delete_target(
    cp: ControlPlaneDep, db: DbSession, id_or_name: str, target: str
) -> Response:
    """Remove a target, by ``host:port`` or ID."""
    version = await entities.delete_target(
        db, cp.registry, upstream=id_or_name, target=target, now=cp.clock.now()
    )
    return deleted(version)
