"""Request paths as the router sees them, and Kong's ``v0`` joining of upstream paths."""

from __future__ import annotations

import re

__all__ = ["join_upstream_path", "normalize_path"]

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_RE = re.compile(r"%([0-9A-Fa-f]{2})")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def normalize_path(path: str) -> str:
    """The path routes are matched against and proxied with (as Kong normalises it).

    Drops any query string, decodes percent-encoded unreserved characters (RFC 3986 §6.2.2.2),
    merges repeated slashes and resolves ``.`` and ``..`` segments, so ``/%61dmin``,
    ``//admin`` and ``/public/../admin`` all reach the route for ``/admin`` and its plugins.
    """
    path = path.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    if "%" not in path and "//" not in path and "/." not in path:
        return path  # the common case: nothing to change
    if "%" in path:
        path = _PERCENT_RE.sub(_decode_unreserved, path)
    segments: list[str] = []
    parts = path.split("/")[1:]
    for part in parts:
        if part == "..":
            if segments:
                segments.pop()
        elif part not in ("", "."):
            segments.append(part)
    if not segments:
        return "/"
    trailing_slash = parts[-1] in ("", ".", "..")
    return "/" + "/".join(segments) + ("/" if trailing_slash else "")


def join_upstream_path(service_path: str | None, request_path: str, rest: str | None) -> str:
    """The upstream path for a request, joined like Kong's ``path_handling: v0``.

    ``rest`` is what is left of ``request_path`` after the matched route path is stripped, or
    None when nothing is stripped (``strip_path`` off, or a route without paths).
    """
    base = service_path or "/"
    if rest is None:
        if base.endswith("/"):
            return base + request_path[1:]
        return base if request_path == "/" else base + request_path
    if rest:
        head = base[:-1] if base.endswith("/") else base
        return head + rest if rest.startswith("/") else head + "/" + rest
    # The whole request path was stripped: keep its trailing slash, if it had one.
    if base == "/":
        return "/"
    if base.endswith("/"):
        return base if request_path.endswith("/") else base[:-1]
    return base + "/" if len(request_path) > 1 and request_path.endswith("/") else base
