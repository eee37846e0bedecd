"""The Kong-style CRUD endpoints every gateway config entity shares.

:func:`crud_router` gives ``GET|POST /api/v1/<collection>`` and ``GET|PATCH|PUT|DELETE
/api/v1/<collection>/{id_or_name}``; each resource module adds its nested endpoints. Every
answer carries the config version it reflects in ``x-config-version``.
"""

# No ``from __future__ import annotations``: FastAPI must see the per-router path parameter
# type (a local alias) as an object, not as a string it would resolve in module globals.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response

from controlplane.api.deps import ControlPlaneDep, DbSession
from controlplane.schemas import EntityList, ErrorBody
from controlplane.services import entities
from controlplane.services.entities import EntityKind, EntityPage, EntityResult

__all__ = [
    "ERRORS",
    "VERSION_HEADER",
    "EntityBody",
    "Offset",
    "Size",
    "add_nested",
    "crud_router",
    "deleted",
    "entity_answer",
    "page_answer",
]

VERSION_HEADER = "x-config-version"
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody},
}
EntityBody = Annotated[
    dict[str, Any], Body(description="The entity's fields; references as {'id'} or {'name'}")
]
Size = Annotated[int, Query(ge=1, le=1000, description="Entities per page")]
Offset = Annotated[int, Query(ge=0, description="Where the page starts (from `next`)")]


def entity_answer(response: Response, result: EntityResult) -> dict[str, Any]:
    """The entity as the body, its config version as a header."""
    response.headers[VERSION_HEADER] = str(result.version)
    return result.entity


def page_answer(request: Request, response: Response, page: EntityPage) -> EntityList:
    """A list in Kong's shape: ``{"data": [...], "next": path or null}``."""
    response.headers[VERSION_HEADER] = str(page.version)
    next_path = None
    if page.next_offset is not None:
        url = request.url.include_query_params(offset=page.next_offset)
        next_path = f"{url.path}?{url.query}"
    return EntityList(data=page.data, next=next_path)


def deleted(version: int) -> Response:
    """204 with the config version after the deletion."""
    return Response(status_code=204, headers={VERSION_HEADER: str(version)})


def crud_router(kind: EntityKind, *, ref_name: str = "id_or_name") -> APIRouter:
    """List, create, read, patch, put and delete endpoints for one kind of entity."""
    router = APIRouter(prefix=f"/api/v1/{kind.collection}", tags=[kind.collection])
    one, many = kind.singular, kind.collection
    Ref = Annotated[str, Path(alias=ref_name)]
    item = f"/{{{ref_name}}}"

    @router.get(
        "",
        response_model=EntityList,
        name=f"list_{many}",
        description=f"All {many} (`?tags=a,b`: every tag, `a/b`: any), `size` per page.",
    )
    async def list_all(
        request: Request,
        response: Response,
        db: DbSession,
        tags: str | None = None,
        size: Size = 100,
        offset: Offset = 0,
    ) -> EntityList:
        page = await entities.list_entities(db, kind=kind, tags=tags, size=size, offset=offset)
        return page_answer(request, response, page)

    @router.post(
        "",
        status_code=201,
        responses=ERRORS,
        name=f"create_{one}",
        description=f"Create a {one}; its ID is generated when absent.",
    )
    async def create(
        cp: ControlPlaneDep, db: DbSession, response: Response, body: EntityBody
    ) -> dict[str, Any]:
        result = await entities.create_entity(
            db, cp.registry, kind=kind, fields=body, now=cp.clock.now()
        )
        return entity_answer(response, result)

    @router.get(item, responses=ERRORS, name=f"get_{one}", description=f"One {one}.")
    async def get(db: DbSession, response: Response, ref: Ref) -> dict[str, Any]:
        return entity_answer(response, await entities.get_entity(db, kind=kind, ref=ref))

    @router.patch(
        item, responses=ERRORS, name=f"update_{one}", description=f"Change fields of a {one}."
    )
    async def update(
        cp: ControlPlaneDep, db: DbSession, response: Response, ref: Ref, body: EntityBody
    ) -> dict[str, Any]:
        result = await entities.update_entity(
            db, cp.registry, kind=kind, ref=ref, fields=body, now=cp.clock.now()
        )
        return entity_answer(response, result)

    @router.put(
        item,
        responses=ERRORS,
        name=f"upsert_{one}",
        description=f"Replace a {one}, or create it with the name (or UUID) in the URL.",
    )
    async def upsert(
        cp: ControlPlaneDep, db: DbSession, response: Response, ref: Ref, body: EntityBody
    ) -> dict[str, Any]:
        result = await entities.upsert_entity(
            db, cp.registry, kind=kind, ref=ref, fields=body, now=cp.clock.now()
        )
        return entity_answer(response, result)

    @router.delete(
        item,
        status_code=204,
        responses=ERRORS,
        name=f"delete_{one}",
        description=f"Delete a {one} and the plugins scoped to it.",
    )
    async def delete(cp: ControlPlaneDep, db: DbSession, ref: Ref) -> Response:
        version = await entities.delete_entity(
            db, cp.registry, kind=kind, ref=ref, now=cp.clock.now()
        )
        return deleted(version)

    return router


def add_nested(
    router: APIRouter, *, parent: EntityKind, child: EntityKind, ref_name: str = "id_or_name"
) -> None:
    """``GET|POST /api/v1/<parent>/{ref}/<child>``: the parent's children and new ones."""
    Ref = Annotated[str, Path(alias=ref_name)]
    path = f"/{{{ref_name}}}/{child.collection}"
    owner = f"{parent.singular}_{child.collection}"

    @router.get(
        path,
        response_model=EntityList,
        responses=ERRORS,
        name=f"list_{owner}",
        description=f"The {child.collection} of a {parent.singular}.",
    )
    async def list_children(
        request: Request,
        response: Response,
        db: DbSession,
        ref: Ref,
        tags: str | None = None,
        size: Size = 100,
        offset: Offset = 0,
    ) -> EntityList:
        page = await entities.list_entities(
            db, kind=child, tags=tags, size=size, offset=offset, parent=(parent, ref)
        )
        return page_answer(request, response, page)

    @router.post(
        path,
        status_code=201,
        responses=ERRORS,
        name=f"create_{owner}",
        description=f"Create a {child.singular} bound to this {parent.singular}.",
    )
    async def create_child(
        cp: ControlPlaneDep, db: DbSession, response: Response, ref: Ref, body: EntityBody
    ) -> dict[str, Any]:
        result = await entities.create_entity(
            db, cp.registry, kind=child, fields=body, now=cp.clock.now(), parent=(parent, ref)
        )
        return entity_answer(response, result)
