"""``/api/v1/routes``: which requests go to which service, with their plugins nested."""

from __future__ import annotations

from controlplane.api.routes.crud import add_nested, crud_router
from controlplane.services.entities import PLUGINS, ROUTES

__all__ = ["router"]

router = crud_router(ROUTES)
add_nested(router, parent=ROUTES, child=PLUGINS)
