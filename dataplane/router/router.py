"""The router: which route, and so which service, a request goes to."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dataplane.gateway_config import Route, Service
from dataplane.router.candidate import (
    Candidate,
    RequestFacts,
    SpanFields,
    Upstream,
    candidates_for,
)
from dataplane.router.hosts import parse_host_header
from dataplane.router.index import RouteIndex
from dataplane.router.paths import join_upstream_path, normalize_path

__all__ = ["DEFAULT_CACHE_SIZE", "RouteMatch", "Router"]

_log = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 4096
# Longer paths are routed but not cached: one client must not fill the cache with huge keys.
_MAX_CACHED_PATH = 1024

_CacheKey = tuple[str, str | None, str, str, tuple[tuple[bytes, bytes], ...]]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Where a request goes.

    ``matched_path`` is the route path (prefix or ``~regex``) that matched, None for a route
    without paths. ``upstream_path`` is the path to request upstream (no query string).
    ``upstream_host`` is the Host header to send when the route preserves the host, else None.
    ``span_attributes`` are the route's attributes on a traced request's root span (shared:
    read only), ``encoded_span_attributes`` the same as encoded ``Span.attributes`` fields;
    ``span_fields`` those of its router and balancer spans. ``route_id``, ``route_name`` and
    ``upstream`` are what the request path reads of the route and its service, as plain values
    (reading a pydantic model's attributes is not specialized by CPython 3.11).
    """

    route: Route
    service: Service
    route_id: str
    route_name: str
    upstream: Upstream
    matched_path: str | None
    upstream_path: str
    upstream_host: str | None
    span_attributes: Mapping[str, Any]
    encoded_span_attributes: bytes
    span_fields: SpanFields


_move_to_end = OrderedDict.move_to_end
"""Through the type: ``cache.move_to_end`` on an OrderedDict (which has a dict slot) is a method
lookup CPython 3.11 does not specialize, on every request the cache answers."""


class Router:
    """Routes compiled once per config; :meth:`match` picks the most specific one (as Kong)."""

    __slots__ = ("_cache", "_cache_size", "_header_names", "_index")

    def __init__(self, index: RouteIndex, header_names: frozenset[bytes], cache_size: int) -> None:
        self._index = index
        self._header_names = header_names
        self._cache_size = cache_size
        self._cache: OrderedDict[_CacheKey, RouteMatch | None] = OrderedDict()

    @classmethod
    def build(
        cls,
        routes: Sequence[Route],
        services: Mapping[str, Service],
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> Router:
        """Compile ``routes``; those whose service is missing or disabled are left out.

        ``cache_size`` bounds the LRU cache of recent matches (0 turns it off).
        """
        candidates: list[Candidate] = []
        for order, route in enumerate(routes):
            service = services.get(route.service_id)
            if service is None or not service.enabled:
                _log.debug("route %r skipped: its service is missing or disabled", route.name)
                continue
            candidates.extend(candidates_for(route, service, order))
        header_names = frozenset(rule.name for c in candidates for rule in c.headers)
        return cls(RouteIndex.build(candidates), header_names, max(cache_size, 0))

    def match(
        self,
        method: str,
        host: str | None,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        scheme: str = "http",
    ) -> tuple[RouteMatch | None, bool]:
        """The route for a request, and whether the answer came from the cache. Never raises.

        ``host`` is the Host header (port included, if sent); ``headers`` the raw ASGI list.
        """
        try:
            return self._match(method, host, path, headers, scheme)
        except Exception:
            _log.exception("router failed on %r %r %r; treating as no match", method, host, path)
            return None, False

    def _match(
        self,
        method: str,
        host: str | None,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        scheme: str,
    ) -> tuple[RouteMatch | None, bool]:
        selected = self._select_headers(headers)
        if not self._cache_size or len(path) > _MAX_CACHED_PATH:
            return self._route(method, host, path, selected, scheme), False
        key: _CacheKey = (method, host, path, scheme, selected)
        cache = self._cache
        # A KeyError (another thread evicted the key) just means routing the request afresh.
        try:
            found = cache[key]
            _move_to_end(cache, key)
        except KeyError:
            pass
        else:
            return found, True
        found = self._route(method, host, path, selected, scheme)
        cache[key] = found
        while len(cache) > self._cache_size:
            try:
                cache.popitem(last=False)
            except KeyError:
                break
        return found, False

    def _select_headers(
        self, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[tuple[bytes, bytes], ...]:
        """The request headers some route matches on (all that the answer can depend on)."""
        names = self._header_names
        if not names:
            return ()
        return tuple((k.lower(), v) for k, v in headers if k.lower() in names)

    def _route(
        self,
        method: str,
        host: str | None,
        path: str,
        headers: tuple[tuple[bytes, bytes], ...],
        scheme: str,
    ) -> RouteMatch | None:
        name, port = parse_host_header(host, scheme)
        values: dict[bytes, list[str]] = {}
        for header, value in headers:
            values.setdefault(header, []).append(value.decode("latin-1"))
        request = RequestFacts(method.upper(), port, normalize_path(path), scheme.lower(), values)
        found = self._index.find(name, request)
        if found is None:
            return None
        candidate, end = found
        route = candidate.route
        stripped = request.path[end:] if route.strip_path and candidate.path is not None else None
        return RouteMatch(
            route,
            candidate.service,
            route.id,
            route.name,
            candidate.upstream,
            candidate.path,
            join_upstream_path(candidate.service.path, request.path, stripped),
            host if route.preserve_host and host else None,
            candidate.span_attributes,
            candidate.encoded_span_attributes,
            candidate.span_fields,
        )
