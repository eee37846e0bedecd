"""The gateway router: picks the route (and service) for a request, as Kong does.

Criteria (all that a route sets must match): ``paths`` (prefix, or ``~regex`` anchored at the
start of the path), ``methods``, ``hosts`` (exact, ``*.example.com``, ``example.*``; with a
port only that port, without any port; case-insensitive), ``headers`` (any listed value,
case-insensitive, or a ``~*`` case-insensitive regex found in the value) and ``protocols``.
Paths are matched after normalisation (see :func:`dataplane.router.paths.normalize_path`).

Priority, Kong's ``traditional_compatible`` order, per (route, host, path) pair; first wins:

1. more criteria categories set (methods, hosts, paths, headers);
2. an exact host matched beats a wildcard host or no host;
3. more headers;
4. a regex path beats a prefix path;
5. among regex paths, higher ``regex_priority``;
6. among prefix paths, the longer prefix;
7. the route listed first in the config (then its first path, then its first host).

``strip_path`` removes the matched prefix (or the regex's match) before the service path is
joined in front, as Kong's ``path_handling: v0``; ``preserve_host`` sends the request's Host.
See ``docs/routing.md`` for the joining table.
"""

from dataplane.router.router import RouteMatch, Router

__all__ = ["RouteMatch", "Router"]
