"""``/api/v1/plugins``: plugin instances (global, per service, per route) and plugin schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from controlplane.api.routes.crud import ERRORS, crud_router
from controlplane.services import entities
from controlplane.services.entities import PLUGINS

__all__ = ["router"]

router = APIRouter(tags=["plugins"])


@router.get("/api/v1/plugins/enabled")
async def enabled_plugins() -> dict[str, list[str]]:
    """The plugins nodes can run."""
    return {"enabled_plugins": entities.plugin_names()}


@router.get("/api/v1/plugins/schema/{name}", responses=ERRORS)
async def plugin_schema(name: str) -> dict[str, Any]:
    """The JSON schema of a plugin's ``config``."""
    return entities.plugin_schema(name)


# After the fixed paths above, which ``/{plugin_id}`` would otherwise match.
router.include_router(crud_router(PLUGINS, ref_name="plugin_id"))
