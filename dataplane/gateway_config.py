"""The gateway configuration: Kong-shaped entities shared by the control plane and the nodes.

The control plane validates user input with these models (CRUD and declarative config) and
pushes the normalised, flat form to nodes as JSON; nodes load it with the same models, so what
the CP accepts is exactly what a node runs.

Entities reference each other by ID in the normalised form. The declarative input form (the one
users write, like decK) may nest routes under services and reference services, routes and
upstreams by name; :func:`normalise_declarative` turns it into the flat form.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ConfigError",
    "Consumer",
    "GatewayConfig",
    "Healthchecks",
    "KeyAuthCredential",
    "PassiveHealthcheck",
    "Plugin",
    "Route",
    "Service",
    "Target",
    "Upstream",
    "entity_id",
    "normalise_declarative",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_HOST_LABEL_RE = re.compile(r"^[A-Za-z0-9-_]+$")
_METHOD_RE = re.compile(r"^[A-Z]+$")
# Kong's namespace for deterministic IDs of declaratively created entities.
_ID_NAMESPACE = uuid.UUID("5c2f4f1e-7c52-4d1e-9f1b-6a1f0b5f2a10")
_MAX_TIMEOUT_MS = 2**31 - 2


def entity_id(kind: str, key: str) -> str:
    """A stable ID for an entity that was declared without one (same name, same ID)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{key}"))


class ConfigError(ValueError):
    """A configuration is inconsistent as a whole; ``loc`` says where (like pydantic's)."""

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc


class _Entity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    tags: tuple[str, ...] = ()

    @field_validator("id")
    @classmethod
    def _id_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError("may contain only letters, digits and '.', '_', '~', '-'")
    return value


class Service(_Entity):
    """An upstream service: where matched requests are proxied."""

    name: str
    protocol: Literal["http", "https"] = "http"
    host: str
    port: int = Field(default=80, ge=1, le=65535)
    path: str | None = None
    retries: int = Field(default=5, ge=0, le=32767)
    connect_timeout: int = Field(default=60000, ge=1, le=_MAX_TIMEOUT_MS)
    write_timeout: int = Field(default=60000, ge=1, le=_MAX_TIMEOUT_MS)
    read_timeout: int = Field(default=60000, ge=1, le=_MAX_TIMEOUT_MS)
    tls_verify: bool = False
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @model_validator(mode="before")
    @classmethod
    def _expand_url(cls, data: Any) -> Any:
        """Accept Kong's ``url`` shorthand for protocol/host/port/path."""
        if not isinstance(data, dict) or "url" not in data:
            return data
        data = dict(data)
        url = data.pop("url")
        if not isinstance(url, str):
            raise ValueError("url must be a string")
        match = re.match(r"^(https?)://([^/:?#]+|\[[0-9A-Fa-f:.]+\])(?::(\d+))?(/[^?#]*)?$", url)
        if not match:
            raise ValueError(f"url {url!r} is not http(s)://host[:port][/path]")
        protocol, host, port, path = match.groups()
        data.setdefault("protocol", protocol)
        data.setdefault("host", host.strip("[]"))
        data.setdefault("port", int(port) if port else (443 if protocol == "https" else 80))
        if path:
            data.setdefault("path", path)
        return data

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value or any(c in value for c in "/?# "):
            raise ValueError("must be a host name or IP address")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


class Route(_Entity):
    """Which requests go to a service: paths, methods, hosts and headers (Kong semantics)."""

    name: str
    service_id: str
    protocols: tuple[Literal["http", "https"], ...] = ("http", "https")
    methods: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    headers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    strip_path: bool = True
    preserve_host: bool = False
    regex_priority: int = 0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for method in value:
            if not _METHOD_RE.match(method):
                raise ValueError(f"method {method!r} must be upper-case letters, e.g. 'GET'")
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            labels = name.split(".")
            wildcards = [i for i, label in enumerate(labels) if label == "*"]
            if len(wildcards) > 1 or (wildcards and wildcards[0] not in (0, len(labels) - 1)):
                raise ValueError(
                    f"host {host!r}: a wildcard must be the leftmost or rightmost label, once"
                )
            if any(label != "*" and not _HOST_LABEL_RE.match(label) for label in labels):
                raise ValueError(f"host {host!r} is not a valid host name")
        return value

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if path.startswith("~"):
                try:
                    re.compile(path[1:])
                except re.error as exc:
                    raise ValueError(f"path {path!r}: invalid regex: {exc}") from None
            elif not path.startswith("/"):
                raise ValueError(f"path {path!r} must start with '/' (or '~' for a regex)")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for name, values in value.items():
            lowered = name.lower()
            if lowered == "host":
                raise ValueError("match the Host header with 'hosts', not 'headers'")
            if not values:
                raise ValueError(f"header {name!r} needs at least one value")
            out[lowered] = values
        return out

    @model_validator(mode="after")
    def _has_criteria(self) -> Self:
        if not (self.methods or self.hosts or self.paths or self.headers):
            raise ValueError("a route needs at least one of methods, hosts, paths or headers")
        return self


class Target(BaseModel):
    """One load-balancing target of an upstream: ``host:port`` and a weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    weight: int = Field(default=100, ge=0, le=65535)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if value.startswith("["):
            host, sep, port = value[1:].partition("]:")
        else:
            host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"target {value!r} must be host:port")
        return value

    @property
    def host(self) -> str:
        """The target's host (brackets of an IPv6 literal removed)."""
        return self.target.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        """The target's port."""
        return int(self.target.rsplit(":", 1)[1])


class PassiveHealthcheck(BaseModel):
    """Failures seen on proxied traffic that mark a target unhealthy (0 disables a counter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    http_statuses: tuple[int, ...] = (500, 503)
    http_failures: int = Field(default=0, ge=0, le=255)
    tcp_failures: int = Field(default=2, ge=0, le=255)
    timeouts: int = Field(default=2, ge=0, le=255)
    # Kong needs an active check to bring a target back; without active checks we retry it
    # after this many seconds.
    unhealthy_secs: float = Field(default=10.0, gt=0, le=86400)


class Healthchecks(BaseModel):
    """Health checking of an upstream's targets (passive only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passive: PassiveHealthcheck = PassiveHealthcheck()


class Upstream(_Entity):
    """A virtual host name that services can point at, balanced over targets."""

    name: str
    algorithm: Literal["round-robin"] = "round-robin"
    targets: tuple[Target, ...] = ()
    healthchecks: Healthchecks = Healthchecks()


class KeyAuthCredential(BaseModel):
    """An API key of a consumer, read by the key-auth plugin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)


class Consumer(_Entity):
    """Someone who calls the gateway; plugins such as key-auth identify them."""

    username: str
    custom_id: str | None = None
    keyauth_credentials: tuple[KeyAuthCredential, ...] = ()


class Plugin(_Entity):
    """A plugin instance: global, or scoped to one service and/or one route."""

    name: str
    enabled: bool = True
    service_id: str | None = None
    route_id: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


def _config_validator(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate a plugin's config with its schema; returns it with defaults filled in."""
    from dataplane.plugins.registry import validate_plugin_config

    return validate_plugin_config(name, config)


class GatewayConfig(BaseModel):
    """The whole normalised gateway configuration a node runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 0
    services: tuple[Service, ...] = ()
    routes: tuple[Route, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    plugins: tuple[Plugin, ...] = ()
    consumers: tuple[Consumer, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for kind, entities, key in (
            ("services", self.services, "name"),
            ("routes", self.routes, "name"),
            ("upstreams", self.upstreams, "name"),
            ("consumers", self.consumers, "username"),
        ):
            _check_unique(kind, entities, "id")
            _check_unique(kind, entities, key)
        _check_unique("plugins", self.plugins, "id")
        service_ids = {s.id for s in self.services}
        route_ids = {r.id for r in self.routes}
        for index, route in enumerate(self.routes):
            if route.service_id not in service_ids:
                raise ConfigError(
                    f"route {route.name!r} references unknown service {route.service_id!r}",
                    ("routes", index, "service"),
                )
        seen_scopes: set[tuple[str, str | None, str | None]] = set()
        for index, plugin in enumerate(self.plugins):
            if plugin.service_id is not None and plugin.service_id not in service_ids:
                raise ConfigError(
                    f"plugin {plugin.name!r} references unknown service {plugin.service_id!r}",
                    ("plugins", index, "service"),
                )
            if plugin.route_id is not None and plugin.route_id not in route_ids:
                raise ConfigError(
                    f"plugin {plugin.name!r} references unknown route {plugin.route_id!r}",
                    ("plugins", index, "route"),
                )
            scope = (plugin.name, plugin.service_id, plugin.route_id)
            if scope in seen_scopes:
                raise ConfigError(
                    f"plugin {plugin.name!r} is configured twice on the same scope",
                    ("plugins", index, "name"),
                )
            seen_scopes.add(scope)
        keys: set[str] = set()
        for index, consumer in enumerate(self.consumers):
            for cred_index, cred in enumerate(consumer.keyauth_credentials):
                if cred.key in keys:
                    raise ConfigError(
                        "duplicate key-auth key",
                        ("consumers", index, "keyauth_credentials", cred_index, "key"),
                    )
                keys.add(cred.key)
        return self

    @classmethod
    def load(cls, data: dict[str, Any]) -> GatewayConfig:
        """Validate a normalised config, including every plugin's config against its schema."""
        config = cls.model_validate(data)
        plugins = []
        for index, plugin in enumerate(config.plugins):
            try:
                checked = _config_validator(plugin.name, plugin.config)
            except ConfigError as exc:
                raise ConfigError(exc.message, ("plugins", index, *exc.loc)) from None
            plugins.append(plugin.model_copy(update={"config": checked}))
        return config.model_copy(update={"plugins": tuple(plugins)})

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys): what nodes receive and what the hash covers."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON without the version: equal configs hash equal."""
        body = self.model_dump(mode="json")
        body.pop("version")
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()

    def service_by_id(self) -> dict[str, Service]:
        """Services keyed by ID."""
        return {s.id: s for s in self.services}


def _check_unique(kind: str, entities: tuple[BaseModel, ...], attr: str) -> None:
    seen: set[object] = set()
    for index, entity in enumerate(entities):
        value = getattr(entity, attr)
        if value in seen:
            raise ConfigError(f"duplicate {attr} {value!r} in {kind}", (kind, index, attr))
        seen.add(value)


def normalise_declarative(document: dict[str, Any]) -> dict[str, Any]:
    """Turn a decK-style document into the flat form :class:`GatewayConfig` validates.

    Accepts routes nested under services or at top level, and references to services, routes
    and upstreams by name or ID. Missing IDs are derived from names, so re-applying the same
    document yields the same IDs and the same hash.
    """
    if not isinstance(document, dict):
        raise ConfigError("the config must be a mapping", ())
    allowed = {"_format_version", "services", "routes", "upstreams", "plugins", "consumers"}
    for key in document:
        if key not in allowed:
            raise ConfigError(f"unknown top-level key {key!r}", (key,))
    services: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    plugins: list[dict[str, Any]] = []
    for index, raw in enumerate(_entity_list(document, "services")):
        service = dict(raw)
        nested_routes = service.pop("routes", [])
        nested_plugins = service.pop("plugins", [])
        _fill_id(service, "service", "name", ("services", index))
        services.append(service)
        for r_index, raw_route in enumerate(_as_list(nested_routes, ("services", index, "routes"))):
            route = dict(raw_route)
            route.setdefault("service", service["id"])
            _collect_route(route, routes, plugins, ("services", index, "routes", r_index))
        for p_index, raw_plugin in enumerate(
            _as_list(nested_plugins, ("services", index, "plugins"))
        ):
            plugin = dict(raw_plugin)
            plugin.setdefault("service", service["id"])
            plugins.append(_located(plugin, ("services", index, "plugins", p_index)))
    for index, raw in enumerate(_entity_list(document, "routes")):
        _collect_route(dict(raw), routes, plugins, ("routes", index))
    for index, raw in enumerate(_entity_list(document, "plugins")):
        plugins.append(_located(dict(raw), ("plugins", index)))

    service_refs = _refs(services, "name")
    route_refs = _refs(routes, "name")
    for route in routes:
        loc = route.pop("__loc__")
        ref = route.pop("service", None)
        if ref is None:
            raise ConfigError(f"route {route.get('name')!r} needs a service", (*loc, "service"))
        route["service_id"] = _resolve(service_refs, ref, "service", (*loc, "service"))
    out_plugins: list[dict[str, Any]] = []
    for plugin in plugins:
        loc = plugin.pop("__loc__")
        for field, refs in (("service", service_refs), ("route", route_refs)):
            ref = plugin.pop(field, None)
            if ref is not None:
                plugin[f"{field}_id"] = _resolve(refs, ref, field, (*loc, field))
        scope = f"{plugin.get('name')}:{plugin.get('service_id')}:{plugin.get('route_id')}"
        plugin.setdefault("id", entity_id("plugin", scope))
        out_plugins.append(plugin)
    upstreams = []
    for index, raw in enumerate(_entity_list(document, "upstreams")):
        upstream = dict(raw)
        _fill_id(upstream, "upstream", "name", ("upstreams", index))
        upstreams.append(upstream)
    consumers = []
    for index, raw in enumerate(_entity_list(document, "consumers")):
        consumer = dict(raw)
        _fill_id(consumer, "consumer", "username", ("consumers", index))
        consumers.append(consumer)
    return {
        "services": services,
        "routes": routes,
        "upstreams": upstreams,
        "plugins": out_plugins,
        "consumers": consumers,
    }


def _as_list(value: Any, loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("must be a list", loc)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError("must be a mapping", (*loc, index))
    return value


def _entity_list(document: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return _as_list(document.get(key), (key,))


def _fill_id(entity: dict[str, Any], kind: str, key: str, loc: tuple[str | int, ...]) -> None:
    if "id" not in entity:
        name = entity.get(key)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{kind} needs a {key}", (*loc, key))
        entity["id"] = entity_id(kind, name)


def _located(entity: dict[str, Any], loc: tuple[str | int, ...]) -> dict[str, Any]:
    entity["__loc__"] = loc
    return entity


def _collect_route(
    route: dict[str, Any],
    routes: list[dict[str, Any]],
    plugins: list[dict[str, Any]],
    loc: tuple[str | int, ...],
) -> None:
    nested_plugins = route.pop("plugins", [])
    _fill_id(route, "route", "name", loc)
    routes.append(_located(route, loc))
    for index, raw in enumerate(_as_list(nested_plugins, (*loc, "plugins"))):
        plugin = dict(raw)
        plugin.setdefault("route", route["id"])
        plugins.append(_located(plugin, (*loc, "plugins", index)))


def _refs(entities: list[dict[str, Any]], key: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for entity in entities:
        refs[str(entity["id"])] = str(entity["id"])
        if isinstance(entity.get(key), str):
            refs.setdefault(entity[key], str(entity["id"]))
    return refs


def _resolve(refs: dict[str, str], ref: Any, kind: str, loc: tuple[str | int, ...]) -> str:
    if isinstance(ref, dict):
        ref = ref.get("id") or ref.get("name")
    if not isinstance(ref, str) or ref not in refs:
        raise ConfigError(f"unknown {kind} {ref!r}", loc)
    return refs[ref]
