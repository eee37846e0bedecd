"""``/api/v1/services``: upstream services, with their routes and plugins nested (Kong style)."""

from __future__ import annotations

from controlplane.api.routes.crud import add_nested, crud_router
from controlplane.services.entities import PLUGINS, ROUTES, SERVICES

__all__ = ["router"]

router = crud_router(SERVICES)
add_nested(router, parent=SERVICES, child=ROUTES)
add_nested(router, parent=SERVICES, child=PLUGINS)
