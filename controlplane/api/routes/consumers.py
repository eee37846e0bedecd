"""``/api/v1/consumers``: who calls the gateway, and their key-auth credentials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request, Response

from controlplane.api.deps import ControlPlaneDep, DbSession
from controlplane.api.routes.crud import (
    ERRORS,
    crud_router,
    deleted,
    entity_answer,
    page_answer,
)
from controlplane.schemas import EntityList
from controlplane.services import entities
from controlplane.services.entities import CONSUMERS

__all__ = ["router"]

router = crud_router(CONSUMERS, ref_name="id_or_username")


@router.get("/{id_or_username}/key-auth", response_model=EntityList, responses=ERRORS)
async def list_credentials(
    request: Request, response: Response, db: DbSession, id_or_username: str
) -> EntityList:
    """A consumer's key-auth credentials."""
    page = await entities.list_credentials(db, consumer=id_or_username)
    return page_answer(request, response, page)


@router.post("/{id_or_username}/key-auth", status_code=201, responses=ERRORS)
async def add_credential(
    cp: ControlPlaneDep,
    db: DbSession,
    response: Response,
    id_or_username: str,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """Give the consumer an API key (``key``; a random one when absent)."""
    result = await entities.add_credential(
        db, cp.registry, consumer=id_or_username, fields=body or {}, now=cp.clock.now()
    )
    return entity_answer(response, result)


@router.delete("/{id_or_username}/key-auth/{key_or_id}", status_code=204, responses=ERRORS)
async def delete_credential(
    cp: ControlPlaneDep, db: DbSession, id_or_username: str, key_or_id: str
) -> Response:
    """Remove a key-auth credential, by key or ID."""
    version = await entities.delete_credential(
        db, cp.registry, consumer=id_or_username, credential=key_or_id, now=cp.clock.now()
    )
    return deleted(version)
