"""A route compiled for matching: one candidate per (host, path) pair of the route.

Kong's ``traditional_compatible`` router gives every path of a route its own priority; we do
the same for hosts, so a route listing both ``api.example.com`` and ``*.example.com`` matches
as an exact-host route when the exact host is the one that matched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dataplane.gateway_config import Route, Service
from dataplane.router.hosts import HostPattern, parse_host_pattern
from dataplane.tracing.wire import span_attribute_fields

__all__ = [
    "NO_ROUTE_SPAN_FIELDS",
    "Candidate",
    "HeaderRule",
    "RequestFacts",
    "SpanFields",
    "Upstream",
    "candidates_for",
]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class RequestFacts:
    """What the router knows about a request once it has read it (not frozen: built per miss)."""

    method: str
    port: int | None
    path: str  # normalised
    scheme: str
    headers: dict[bytes, list[str]]  # only the header names some route matches on


@dataclass(frozen=True, slots=True)
class Upstream:
    """What a proxied request reads of its route's service, made once per config as a plain
    slotted object: a pydantic model's attribute is read through its ``__getattr__`` hook, which
    CPython 3.11 does not specialize (~300 instructions a read, a dozen reads per request)."""

    service_id: str
    protocol: str
    host: str
    port: int
    retries: int
    tls_verify: bool

    @classmethod
    def of(cls, service: Service) -> Upstream:
        return cls(
            service.id,
            service.protocol,
            service.host,
            service.port,
            service.retries,
            service.tls_verify,
        )


@dataclass(frozen=True, slots=True)
class SpanFields:
    """A route's attributes on a traced request's router and balancer spans, encoded once per
    config as ``Span.attributes`` fields (set as the spans' ``encoded_attributes``): no
    attribute dict made and encoded for either span on every traced request."""

    router: tuple[bytes, bytes]
    """``gateway.router.cache_hit`` (indexed by it: False, True) and ``gateway.route.id``."""
    balancer: bytes
    """``gateway.upstream.name``."""
    first_try: bytes
    """``balancer`` and ``gateway.balancer.tries`` = 1 (the balancer span of most requests)."""

    @classmethod
    def of(cls, route_id: str | None, upstream_name: str) -> SpanFields:
        """The fields of a route (``route_id`` None: no route matched)."""
        by_hit: list[bytes] = []
        for hit in (False, True):
            attributes: dict[str, Any] = {"gateway.router.cache_hit": hit}
            if route_id is not None:
                attributes["gateway.route.id"] = route_id
            by_hit.append(span_attribute_fields(attributes))
        balancer = span_attribute_fields({"gateway.upstream.name": upstream_name})
        return cls((by_hit[0], by_hit[1]), balancer, balancer + tries_field(1))


def tries_field(tries: int) -> bytes:
    """``gateway.balancer.tries`` as an encoded attribute field."""
    return span_attribute_fields({"gateway.balancer.tries": tries})


NO_ROUTE_SPAN_FIELDS: Final = SpanFields.of(None, "")
"""The router span's fields when no route matched (there is no balancer span then)."""


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """``route.headers[name]``: any value equal (case-insensitive) or any ``~*`` regex found."""

    name: bytes
    values: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    def accepts(self, values: list[str]) -> bool:
        """Whether one of the request's values of this header matches."""
        for value in values:
            if value.lower() in self.values:
                return True
            if any(pattern.search(value) for pattern in self.patterns):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Candidate:
    """One (host, path) pair of a route, with its priority ``key`` (smaller wins)."""

    route: Route
    service: Service
    host: HostPattern | None
    path: str | None  # as configured: a prefix, or '~regex'
    regex: re.Pattern[str] | None
    methods: frozenset[str]
    protocols: frozenset[str]
    headers: tuple[HeaderRule, ...]
    key: tuple[int, ...]
    # What a traced request's root span says about its route, assembled once per config
    # (shared by every match: read only; a plain dict because dict.update is fastest from one),
    # and the same already encoded (what the C root writer copies).
    span_attributes: Mapping[str, Any] = field(compare=False)
    encoded_span_attributes: bytes = field(compare=False)
    span_fields: SpanFields = field(compare=False)
    upstream: Upstream = field(compare=False)

    def accepts(self, request: RequestFacts) -> bool:
        """The criteria the index does not check: protocol, method, host port, headers."""
        if request.scheme not in self.protocols:
            return False
        if self.methods and request.method not in self.methods:
            return False
        if self.host is not None and self.host.port is not None and self.host.port != request.port:
            return False
        for rule in self.headers:
            values = request.headers.get(rule.name)
            if values is None or not rule.accepts(values):
                return False
        return True


def _header_rule(name: str, values: tuple[str, ...]) -> HeaderRule:
    plain: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for value in values:
        if value.startswith("~*"):
            try:
                patterns.append(re.compile(value[2:], re.IGNORECASE))
            except re.error:
                _log.warning("header %r: invalid regex %r ignored", name, value)
        else:
            plain.add(value.lower())
    return HeaderRule(name.lower().encode("latin-1"), frozenset(plain), tuple(patterns))


def _priority(
    route: Route, host: HostPattern | None, path: str | None, order: int, index: int
) -> tuple[int, ...]:
    """Kong's traditional_compatible priority, as a tuple that sorts best first."""
    categories = sum(bool(c) for c in (route.methods, route.hosts, route.paths, route.headers))
    exact_host = host is not None and host.kind == "exact"
    is_regex = path is not None and path.startswith("~")
    prefix_length = len(path) if path is not None and not is_regex else 0
    return (
        -categories,
        -exact_host,
        -len(route.headers),
        -is_regex,
        -(route.regex_priority if is_regex else 0),
        -prefix_length,
        order,
        index,
    )


def candidates_for(route: Route, service: Service, order: int) -> Iterator[Candidate]:
    """The candidates of ``route``; ``order`` is its position in the config (ties go first)."""
    hosts: list[HostPattern | None] = [parse_host_pattern(h) for h in route.hosts] or [None]
    paths: list[str | None] = list(route.paths) or [None]
    methods = frozenset(m.upper() for m in route.methods)
    protocols = frozenset(route.protocols)
    headers = tuple(_header_rule(name, values) for name, values in route.headers.items())
    index = 0
    span_fields = SpanFields.of(route.id, service.host)
    upstream = Upstream.of(service)
    common = {
        "gateway.route.id": route.id,
        "gateway.route.name": route.name,
        "gateway.service.id": service.id,
        "gateway.service.name": service.name,
    }
    for path in paths:
        span_attributes = {"http.route": path, **common} if path else common
        encoded = span_attribute_fields(span_attributes)
        regex: re.Pattern[str] | None = None
        if path is not None and path.startswith("~"):
            try:
                regex = re.compile(path[1:])
            except re.error:
                _log.warning("route %r: invalid regex path %r ignored", route.name, path)
                continue
        for host in hosts:
            key = _priority(route, host, path, order, index)
            yield Candidate(
                route,
                service,
                host,
                path,
                regex,
                methods,
                protocols,
                headers,
                key,
                span_attributes,
                encoded,
                span_fields,
                upstream,
            )
            index += 1
