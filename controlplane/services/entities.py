"""Kong Admin API style CRUD on the gateway config entities.

Every change reads the current config version, applies one edit to its flat body, validates
the whole config with the data plane's own models and stores it as the next version, which is
pushed to every connected node. An invalid change stores nothing.

Entities are shown and accepted in Kong's shape: a route's service is ``{"id": ...}`` (input
may also name it, or give a plain string); the stored form keeps ``service_id``.
"""

from __future__ import annotations

import copy
import secrets
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.cluster.registry import NodeRegistry
from controlplane.errors import Conflict, Invalid, NotFound
from controlplane.schemas import ErrorDetail
from controlplane.services import config as config_service
from dataplane.gateway_config import GatewayConfig, Healthchecks, entity_id
from dataplane.plugins import registry as plugin_registry

__all__ = [
    "CONSUMERS",
    "PLUGINS",
    "ROUTES",
    "SERVICES",
    "UPSTREAMS",
    "EntityKind",
    "EntityPage",
    "EntityResult",
    "add_credential",
    "add_target",
    "create_entity",
    "delete_credential",
    "delete_entity",
    "delete_target",
    "get_entity",
    "list_credentials",
    "list_entities",
    "list_targets",
    "plugin_names",
    "plugin_schema",
    "update_entity",
    "upsert_entity",
]

Body = dict[str, Any]  # the flat config (services, routes, ...) as stored, without its version
Entity = dict[str, Any]

_ATTEMPTS = 3  # a change that lost a race with another writer is re-applied on the new version
_URL_PARTS = ("protocol", "host", "port", "path")


@dataclass(frozen=True, slots=True)
class EntityKind:
    """How one kind of config entity is named, referenced and merged."""

    collection: str  # its list in the config and its URL segment
    singular: str
    key: str | None  # the unique name field; plugins have none
    refs: tuple[str, ...] = ()  # Kong references ("service") stored as "<ref>_id"
    children: str | None = None  # a sub-entity list that PUT keeps when the body omits it
    records: tuple[str, ...] = ()  # fields PATCH merges key by key (Kong's records)


SERVICES = EntityKind("services", "service", "name")
ROUTES = EntityKind("routes", "route", "name", refs=("service",))
UPSTREAMS = EntityKind(
    "upstreams", "upstream", "name", children="targets", records=("healthchecks",)
)
CONSUMERS = EntityKind("consumers", "consumer", "username", children="keyauth_credentials")
PLUGINS = EntityKind("plugins", "plugin", None, refs=("service", "route"), records=("config",))
_REFERENCED = {"service": SERVICES, "route": ROUTES}


@dataclass(frozen=True, slots=True)
class EntityResult:
    """One entity in its public shape and the config version it belongs to."""

    entity: Entity
    version: int


@dataclass(frozen=True, slots=True)
class EntityPage:
    """A page of entities; ``next_offset`` is None on the last page."""

    data: list[Entity]
    next_offset: int | None
    version: int


@dataclass(frozen=True, slots=True)
class _Focus:
    """The entity a change is about: where it sits in the config and how to name it."""

    loc: tuple[str | int, ...] | None  # None: the entity is gone (a deletion)
    label: str


# -- reading -----------------------------------------------------------------------------------


async def _current(db: AsyncSession) -> tuple[config_service.CurrentConfig, Body]:
    current = await config_service.current_config(db)
    body = current.config.model_dump(mode="json")
    body.pop("version")
    return current, body


def _find(items: list[Entity], *, kind: EntityKind, ref: str) -> int | None:
    for index, item in enumerate(items):
        if item["id"] == ref:
            return index
    if kind.key is not None:
        for index, item in enumerate(items):
            if item[kind.key] == ref:
                return index
    return None


def _locate(body: Body, *, kind: EntityKind, ref: str) -> int:
    index = _find(body[kind.collection], kind=kind, ref=ref)
    if index is None:
        raise NotFound(f"no {kind.singular} {ref!r}")
    return index


def _lookup(body: Body, *, kind: EntityKind, ref: str) -> Entity:
    entity: Entity = body[kind.collection][_locate(body, kind=kind, ref=ref)]
    return entity


def _label(kind: EntityKind, entity: Entity) -> str:
    name = entity.get(kind.key or "name") or entity.get("id")
    return kind.singular if name is None else f"{kind.singular} {name!r}"


def _public(kind: EntityKind, entity: Entity) -> Entity:
    out = dict(entity)
    for ref in kind.refs:
        ident = out.pop(f"{ref}_id", None)
        out[ref] = None if ident is None else {"id": ident}
    return out


def _tag_filter(tags: str | None) -> Callable[[Entity], bool]:
    """Kong's ``?tags=``: ``a,b`` needs every tag, ``a/b`` any of them."""
    if not tags:
        return lambda _entity: True
    if "," in tags and "/" in tags:
        raise Invalid.at(["query", "tags"], "combine tags with ',' (all) or '/' (any), not both")
    if "/" in tags:
        wanted = set(tags.split("/"))
        return lambda entity: bool(wanted & set(entity.get("tags", ())))
    required = set(tags.split(","))
    return lambda entity: required <= set(entity.get("tags", ()))


def _page(items: list[Entity], *, size: int, offset: int, version: int) -> EntityPage:
    end = offset + size
    return EntityPage(items[offset:end], end if end < len(items) else None, version)


async def list_entities(
    db: AsyncSession,
    *,
    kind: EntityKind,
    tags: str | None = None,
    size: int = 100,
    offset: int = 0,
    parent: tuple[EntityKind, str] | None = None,
) -> EntityPage:
    """Entities in config order, filtered by tags and, nested, by the parent they belong to."""
    current, body = await _current(db)
    matches = _tag_filter(tags)
    items = [item for item in body[kind.collection] if matches(item)]
    if parent is not None:
        parent_kind, parent_ref = parent
        parent_id = _lookup(body, kind=parent_kind, ref=parent_ref)["id"]
        field = f"{parent_kind.singular}_id"
        items = [item for item in items if item.get(field) == parent_id]
    public = [_public(kind, item) for item in items]
    return _page(public, size=size, offset=offset, version=current.version)


async def get_entity(db: AsyncSession, *, kind: EntityKind, ref: str) -> EntityResult:
    """One entity by ID or name (404 when there is none)."""
    current, body = await _current(db)
    entity = _lookup(body, kind=kind, ref=ref)
    return EntityResult(_public(kind, entity), current.version)


# -- changing ----------------------------------------------------------------------------------


async def _change(
    db: AsyncSession,
    registry: NodeRegistry,
    *,
    now: datetime,
    verb: str,
    edit: Callable[[Body], _Focus],
) -> tuple[config_service.CurrentConfig, _Focus]:
    """Apply ``edit`` to the current config, validate the whole of it, store and push it."""
    attempt = 1
    while True:
        current, body = await _current(db)
        focus = edit(body)
        config = _validated(body, focus)
        try:
            saved = await config_service.save_if_changed(
                db, registry, config, current=current, change=f"{verb} {focus.label}", now=now
            )
        except Conflict:
            if attempt >= _ATTEMPTS:
                raise
            attempt += 1
            continue
        return saved, focus


def _validated(body: Body, focus: _Focus) -> GatewayConfig:
    try:
        return config_service.validate_config(body)
    except Invalid as exc:
        raise _relocated(exc, focus, _entity_at(body, focus)) from None


def _entity_at(body: Body, focus: _Focus) -> Entity:
    node: Any = body
    for part in focus.loc or ():
        node = node[part]
    return node if isinstance(node, dict) else {}


def _relocated(exc: Invalid, focus: _Focus, entity: Entity) -> Invalid:
    """Point errors inside the changed entity at the request body, others at the config."""
    errors = [
        ErrorDetail(loc=_error_loc(error, focus, entity), message=error.message)
        for error in exc.errors
    ]
    if not errors:
        return exc
    first = errors[0]
    subject = focus.label if first.loc[0] == "body" else "config"
    where = ".".join(str(part) for part in first.loc[1:])
    message = f"{subject}: {where}: {first.message}" if where else f"{subject}: {first.message}"
    return Invalid(message, errors)


def _error_loc(error: ErrorDetail, focus: _Focus, entity: Entity) -> list[str | int]:
    loc = error.loc
    size = len(focus.loc or ())
    if focus.loc is None or tuple(loc[:size]) != focus.loc:
        return ["config", *loc]
    rest = list(loc[size:])
    if rest and isinstance(rest[0], str) and rest[0].removesuffix("_id") in _REFERENCED:
        rest[0] = rest[0].removesuffix("_id")
    return ["body", *rest, *_item_index(rest, entity, error.message)]


def _item_index(rest: list[str | int], entity: Entity, message: str) -> list[int]:
    """The model checks lists (paths, hosts, methods) whole; point at the item it quotes."""
    items = entity.get(rest[0]) if len(rest) == 1 and isinstance(rest[0], str) else None
    if not isinstance(items, list):
        return []
    quoted = [
        (message.find(repr(item)), index)
        for index, item in enumerate(items)
        if isinstance(item, str) and repr(item) in message
    ]
    return [min(quoted)[1]] if quoted else []  # the first quoted: "'get' ... e.g. 'GET'"


def _saved_entity(
    saved: config_service.CurrentConfig, kind: EntityKind, focus: _Focus
) -> EntityResult:
    assert focus.loc is not None  # only called after creating or changing an entity
    body = saved.config.model_dump(mode="json")
    entity = body[kind.collection][int(focus.loc[1])]
    return EntityResult(_public(kind, entity), saved.version)


def _invalid(label: str, field: str, message: str) -> Invalid:
    """A 422 about one field of the request body, naming the entity."""
    error = ErrorDetail(loc=["body", field], message=message)
    return Invalid(f"{label}: {field}: {message}", [error])


def _resolve(body: Body, *, ref: str, value: Any, label: str) -> str | None:
    """A Kong reference (``{"id"}``, ``{"name"}``, a plain ID or name, or null) to an ID."""
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) - {"id", "name"}:
            raise _invalid(label, ref, "a reference is {'id': ...} or {'name': ...}")
        value = value.get("id") or value.get("name")
    if not isinstance(value, str) or not value:
        raise _invalid(label, ref, "a reference is an ID or a name")
    kind = _REFERENCED[ref]
    index = _find(body[kind.collection], kind=kind, ref=value)
    if index is None:
        raise _invalid(label, ref, f"unknown {ref} {value!r}")
    ident: str = body[kind.collection][index]["id"]
    return ident


def _entity_input(body: Body, *, kind: EntityKind, fields: Entity) -> Entity:
    """The request body in stored form: references resolved to IDs."""
    entity = copy.deepcopy(fields)
    label = _label(kind, entity)
    for ref in kind.refs:
        if ref in entity:
            entity[f"{ref}_id"] = _resolve(body, ref=ref, value=entity.pop(ref), label=label)
    return entity


def _check_unique(body: Body, *, kind: EntityKind, entity: Entity, index: int | None) -> None:
    label = _label(kind, entity)
    for other_index, other in enumerate(body[kind.collection]):
        if other_index == index:
            continue
        if other["id"] == entity.get("id"):
            raise _invalid(label, "id", f"a {kind.singular} with this id already exists")
        if kind.key is not None and other[kind.key] == entity.get(kind.key):
            raise _invalid(label, kind.key, f"a {kind.singular} with this {kind.key} exists")
        if kind is PLUGINS and _plugin_scope(other) == _plugin_scope(entity):
            raise _invalid(
                label, "name", f"already configured on this scope (plugin id {other['id']!r})"
            )


def _plugin_scope(plugin: Entity) -> tuple[Any, Any, Any]:
    return plugin.get("name"), plugin.get("service_id"), plugin.get("route_id")


def _append(body: Body, *, kind: EntityKind, entity: Entity) -> _Focus:
    entity.setdefault("id", str(uuid.uuid4()))
    _check_unique(body, kind=kind, entity=entity, index=None)
    items = body[kind.collection]
    items.append(entity)
    return _Focus((kind.collection, len(items) - 1), _label(kind, entity))


def _merged(old: Entity, changes: Entity, *, kind: EntityKind) -> Entity:
    """Kong's PATCH: fields replaced, records merged, ``url`` replacing its parts."""
    base = dict(old)
    if "url" in changes:
        for part in _URL_PARTS:
            base.pop(part, None)
    for field, value in changes.items():
        if field in kind.records and isinstance(value, dict):
            base[field] = _merge_record(base.get(field), value, _record_model(field, base))
        else:
            base[field] = value
    return base


def _record_model(field: str, entity: Entity) -> type[BaseModel] | None:
    if field == "healthchecks":
        return Healthchecks
    plugin = plugin_registry.plugin_classes().get(entity.get("name", ""))
    return None if plugin is None else plugin.config_model


def _merge_record(
    old: Any, changes: dict[str, Any], model: type[BaseModel] | None
) -> dict[str, Any]:
    """Merge the fields given; nested records (pydantic models) merge too, maps are replaced."""
    merged = dict(old) if isinstance(old, dict) else {}
    for field, value in changes.items():
        nested = _nested_model(model, field)
        if nested is not None and isinstance(value, dict):
            merged[field] = _merge_record(merged.get(field), value, nested)
        else:
            merged[field] = value
    return merged


def _nested_model(model: type[BaseModel] | None, field: str) -> type[BaseModel] | None:
    info = None if model is None else model.model_fields.get(field)
    if info is None:
        return None
    for candidate in (info.annotation, *typing.get_args(info.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _check_id_kept(old: Entity, entity: Entity, *, kind: EntityKind) -> None:
    if entity.get("id", old["id"]) != old["id"]:
        raise _invalid(_label(kind, old), "id", f"cannot change; the id is {old['id']!r}")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def create_entity(
    db: AsyncSession,
    registry: NodeRegistry,
    *,
    kind: EntityKind,
    fields: Entity,
    now: datetime,
    parent: tuple[EntityKind, str] | None = None,
) -> EntityResult:
    """``POST``: a new entity (ID generated when absent), optionally bound to ``parent``."""

    def edit(body: Body) -> _Focus:
        if parent is None:
            return _append(body, kind=kind, entity=_entity_input(body, kind=kind, fields=fields))
        parent_kind, parent_ref = parent
        parent_id = _lookup(body, kind=parent_kind, ref=parent_ref)["id"]
        # The URL names the parent, as in Kong; a reference to it in the body is ignored.
        given = {k: v for k, v in fields.items() if k != parent_kind.singular}
        entity = _entity_input(body, kind=kind, fields=given)
        entity[f"{parent_kind.singular}_id"] = parent_id
        return _append(body, kind=kind, entity=entity)

    saved, focus = await _change(db, registry, now=now, verb="create", edit=edit)
    return _saved_entity(saved, kind, focus)


async def update_entity(
    db: AsyncSession,
    registry: NodeRegistry,
    *,
    kind: EntityKind,
    ref: str,
    fields: Entity,
    now: datetime,
) -> EntityResult:
    """``PATCH``: change the given fields of an existing entity."""

    def edit(body: Body) -> _Focus:
        index = _locate(body, kind=kind, ref=ref)
        old = body[kind.collection][index]
        changes = _entity_input(body, kind=kind, fields=fields)
        _check_id_kept(old, changes, kind=kind)
        entity = _merged(old, changes, kind=kind)
        _check_unique(body, kind=kind, entity=entity, index=index)
        body[kind.collection][index] = entity
        return _Focus((kind.collection, index), _label(kind, entity))

    saved, focus = await _change(db, registry, now=now, verb="update", edit=edit)
    return _saved_entity(saved, kind, focus)


async def upsert_entity(
    db: AsyncSession,
    registry: NodeRegistry,
    *,
    kind: EntityKind,
    ref: str,
    fields: Entity,
    now: datetime,
) -> EntityResult:
    """``PUT``: replace the entity ``ref`` names, or create it with that name (or UUID)."""

    def edit(body: Body) -> _Focus:
        entity = _entity_input(body, kind=kind, fields=fields)
        index = _find(body[kind.collection], kind=kind, ref=ref)
        if index is None:
            _name_from_url(entity, kind=kind, ref=ref)
            return _append(body, kind=kind, entity=entity)
        old = body[kind.collection][index]
        _check_id_kept(old, entity, kind=kind)
        entity["id"] = old["id"]
        if kind.key is not None:
            if old["id"] != ref:
                _name_from_url(entity, kind=kind, ref=ref)
            entity.setdefault(kind.key, old[kind.key])
        if kind.children is not None and kind.children not in entity:
            entity[kind.children] = old[kind.children]
        _check_unique(body, kind=kind, entity=entity, index=index)
        body[kind.collection][index] = entity
        return _Focus((kind.collection, index), _label(kind, entity))

    saved, focus = await _change(db, registry, now=now, verb="replace", edit=edit)
    return _saved_entity(saved, kind, focus)


def _name_from_url(entity: Entity, *, kind: EntityKind, ref: str) -> None:
    """Kong's PUT: a UUID in the URL is the ID, anything else the name."""
    field = "id" if kind.key is None or _is_uuid(ref) else kind.key
    if entity.setdefault(field, ref) != ref:
        raise _invalid(_label(kind, entity), field, f"{entity[field]!r} does not match the URL")


async def delete_entity(
    db: AsyncSession, registry: NodeRegistry, *, kind: EntityKind, ref: str, now: datetime
) -> int:
    """``DELETE``: remove an entity and the plugins scoped to it; returns the new version.

    A service that routes still use is refused (409) like Kong does, naming the routes.
    """

    def edit(body: Body) -> _Focus:
        index = _locate(body, kind=kind, ref=ref)
        entity = body[kind.collection][index]
        if kind is SERVICES:
            _refuse_used_service(body, entity)
        del body[kind.collection][index]
        if kind.singular in _REFERENCED:
            field = f"{kind.singular}_id"
            body["plugins"] = [p for p in body["plugins"] if p.get(field) != entity["id"]]
        return _Focus(None, _label(kind, entity))

    saved, _focus = await _change(db, registry, now=now, verb="delete", edit=edit)
    return saved.version


def _refuse_used_service(body: Body, service: Entity) -> None:
    users = [
        (index, route)
        for index, route in enumerate(body["routes"])
        if route["service_id"] == service["id"]
    ]
    if not users:
        return
    names = ", ".join(repr(route["name"]) for _index, route in users)
    message = (
        f"service {service['name']!r} is used by routes {names}: "
        "delete them or point them at another service first"
    )
    errors = [
        ErrorDetail(loc=["config", "routes", index, "service"], message=message)
        for index, _route in users
    ]
    raise Conflict(message, errors)


# -- entities stored inside a parent: upstream targets, key-auth credentials ------------------


@dataclass(frozen=True, slots=True)
class _ChildKind:
    """Entities kept in a list inside their parent (``parent.children``), with a deterministic
    ID each: an upstream's targets, a consumer's key-auth credentials."""

    parent: EntityKind
    singular: str
    key: str  # the field that names one (unique within its parent, or everywhere)
    id_namespace: str
    scoped_id: bool  # the ID also depends on the parent (a target's, not a credential's key)
    secret_key: bool  # the key is never written into a change's description or a message
    unique_everywhere: bool  # the key is unique across all parents, not only within one
    clash: str  # why a duplicate key is refused

    def public(self, parent: Entity, child: Entity) -> Entity:
        name = f"{parent['id']}:{child[self.key]}" if self.scoped_id else child[self.key]
        ident = entity_id(self.id_namespace, name)
        return {"id": ident, **child, self.parent.singular: {"id": parent["id"]}}

    def label(self, parent: Entity, ref: str | None = None) -> str:
        named = f" {ref!r}" if ref is not None and not self.secret_key else ""
        return f"{self.singular}{named} of {_label(self.parent, parent)}"

    def items(self, parent: Entity) -> list[Entity]:
        assert self.parent.children is not None
        children: list[Entity] = parent[self.parent.children]
        return children


TARGETS = _ChildKind(
    UPSTREAMS,
    "target",
    "target",
    id_namespace="target",
    scoped_id=True,
    secret_key=False,
    unique_everywhere=False,
    clash="the upstream already has {value!r}",
)
KEYAUTH_CREDENTIALS = _ChildKind(
    CONSUMERS,
    "key-auth credential",
    "key",
    id_namespace="keyauth_credential",
    scoped_id=False,
    secret_key=True,
    unique_everywhere=True,
    clash="this key is already in use",
)


async def _list_children(db: AsyncSession, kind: _ChildKind, *, parent: str) -> EntityPage:
    current, body = await _current(db)
    entity = _lookup(body, kind=kind.parent, ref=parent)
    data = [kind.public(entity, child) for child in kind.items(entity)]
    return EntityPage(data, None, current.version)


async def _add_child(
    db: AsyncSession,
    registry: NodeRegistry,
    kind: _ChildKind,
    *,
    parent: str,
    child: Entity,
    now: datetime,
) -> EntityResult:
    def edit(body: Body) -> _Focus:
        index = _locate(body, kind=kind.parent, ref=parent)
        entity = body[kind.parent.collection][index]
        parents = body[kind.parent.collection] if kind.unique_everywhere else [entity]
        taken = (known[kind.key] for other in parents for known in kind.items(other))
        if child.get(kind.key) in taken:
            message = kind.clash.format(value=child[kind.key])
            raise _invalid(kind.label(entity), kind.key, message)
        kind.items(entity).append(dict(child))  # a fresh copy for each try of the edit
        assert kind.parent.children is not None
        loc = (kind.parent.collection, index, kind.parent.children, len(kind.items(entity)) - 1)
        return _Focus(loc, kind.label(entity))

    saved, focus = await _change(db, registry, now=now, verb="add", edit=edit)
    assert focus.loc is not None
    collection = getattr(saved.config, kind.parent.collection)
    entity = collection[int(focus.loc[1])].model_dump(mode="json")
    return EntityResult(kind.public(entity, kind.items(entity)[int(focus.loc[3])]), saved.version)


async def _delete_child(
    db: AsyncSession,
    registry: NodeRegistry,
    kind: _ChildKind,
    *,
    parent: str,
    ref: str,
    now: datetime,
) -> int:
    def edit(body: Body) -> _Focus:
        entity = _lookup(body, kind=kind.parent, ref=parent)
        children = kind.items(entity)
        kept = [
            child
            for child in children
            if ref not in (child[kind.key], kind.public(entity, child)["id"])
        ]
        if len(kept) == len(children):
            raise NotFound(f"{_label(kind.parent, entity)} has no {kind.singular} {ref!r}")
        assert kind.parent.children is not None
        entity[kind.parent.children] = kept
        return _Focus(None, kind.label(entity, ref))

    saved, _focus = await _change(db, registry, now=now, verb="remove", edit=edit)
    return saved.version


async def list_targets(db: AsyncSession, *, upstream: str) -> EntityPage:
    """The targets of an upstream (a deterministic ID each, as targets are stored inline)."""
    return await _list_children(db, TARGETS, parent=upstream)


async def add_target(
    db: AsyncSession, registry: NodeRegistry, *, upstream: str, fields: Entity, now: datetime
) -> EntityResult:
    """Add a ``host:port`` target to an upstream."""
    target = {field: value for field, value in fields.items() if field != "upstream"}
    return await _add_child(db, registry, TARGETS, parent=upstream, child=target, now=now)


async def delete_target(
    db: AsyncSession, registry: NodeRegistry, *, upstream: str, target: str, now: datetime
) -> int:
    """Remove a target, named by ``host:port`` or by its ID; returns the new version."""
    return await _delete_child(db, registry, TARGETS, parent=upstream, ref=target, now=now)


async def list_credentials(db: AsyncSession, *, consumer: str) -> EntityPage:
    """A consumer's key-auth credentials."""
    return await _list_children(db, KEYAUTH_CREDENTIALS, parent=consumer)


async def add_credential(
    db: AsyncSession, registry: NodeRegistry, *, consumer: str, fields: Entity, now: datetime
) -> EntityResult:
    """Give a consumer a key-auth key (a random one when ``key`` is absent, like Kong)."""
    credential = {field: value for field, value in fields.items() if field != "consumer"}
    credential.setdefault("key", secrets.token_hex(16))
    return await _add_child(
        db, registry, KEYAUTH_CREDENTIALS, parent=consumer, child=credential, now=now
    )


async def delete_credential(
    db: AsyncSession, registry: NodeRegistry, *, consumer: str, credential: str, now: datetime
) -> int:
    """Remove a key-auth credential, named by its key or ID; returns the new version."""
    return await _delete_child(
        db, registry, KEYAUTH_CREDENTIALS, parent=consumer, ref=credential, now=now
    )


# -- plugin schemas ----------------------------------------------------------------------------


def plugin_names() -> list[str]:
    """The plugins nodes run, by name."""
    return sorted(plugin_registry.plugin_classes())


def plugin_schema(name: str) -> dict[str, Any]:
    """The JSON schema of plugin ``name``'s config (404 for an unknown plugin)."""
    plugin = plugin_registry.plugin_classes().get(name)
    if plugin is None:
        raise NotFound(f"no plugin {name!r} (known: {', '.join(plugin_names())})")
    return plugin.config_model.model_json_schema()
