"""What the data plane knows about one request (and later its response), as rules read it.

Built per request only when a session with a rule is active, so construction just stores what
it is given; everything derived (host without port, header values, query arguments, path
segments, parsed addresses) is computed on first use and cached on the instance.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from enum import Enum
from typing import Final
from urllib.parse import unquote_to_bytes

__all__ = ["RequestFacts"]

RawHeaders = Sequence[tuple[bytes, bytes]]
IpKey = tuple[int, int]  # (IP version, address as an integer)


class _Missing(Enum):
    """Marks a cached value not computed yet (None is a legitimate 'absent')."""

    TOKEN = 0


_MISSING: Final = _Missing.TOKEN
_V4_MAPPED: Final = bytes(10) + b"\xff\xff"


class RequestFacts:
    """The evaluation context of a sampling rule: request facts, then response facts."""

    __slots__ = (
        "_dst_ip",
        "_header_cache",
        "_host",
        "_host_raw",
        "_queries",
        "_response_cache",
        "_segments",
        "_src_ip",
        "client",
        "gateway_ms",
        "headers",
        "method",
        "path",
        "query_string",
        "response_headers",
        "scheme",
        "server",
        "sni",
        "status",
        "total_ms",
        "upstream_ms",
    )

    def __init__(
        self,
        *,
        method: str,
        host: str | None,
        path: str,
        query_string: bytes,
        headers: RawHeaders,
        scheme: str,
        sni: str | None,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.scheme = scheme
        self.sni = sni
        self.client = client
        self.server = server
        self._host_raw = host
        self._host: str | _Missing | None = _MISSING
        self._src_ip: IpKey | _Missing | None = _MISSING
        self._dst_ip: IpKey | _Missing | None = _MISSING
        self._header_cache: dict[bytes, list[str]] | None = None
        self._queries: dict[str, list[str]] | None = None
        self._segments: list[str] | None = None
        self.status: int | None = None
        self.response_headers: RawHeaders = ()
        self._response_cache: dict[bytes, list[str]] | None = None
        self.total_ms: float | None = None
        self.upstream_ms: float | None = None
        self.gateway_ms: float | None = None

    def set_response(
        self,
        status: int,
        headers: RawHeaders,
        total_ms: float,
        upstream_ms: float | None,
        gateway_ms: float | None,
    ) -> None:
        """Add what is known once the response is complete (for tail rules)."""
        self.status = status
        self.response_headers = headers
        self._response_cache = None
        self.total_ms = total_ms
        self.upstream_ms = upstream_ms
        self.gateway_ms = gateway_ms

    # -- derived request facts --------------------------------------------------------------

    def host(self) -> str | None:
        """``http.host``: the Host without its port, lower-cased; None when there is none."""
        host = self._host
        if host is _MISSING:
            host = self._host = _host_without_port(self._host_raw)
        return host

    def header(self, key: bytes) -> list[str]:
        """Every value of a request header; ``key`` is the field's name (``b"x_debug"``)."""
        cache = self._header_cache
        if cache is None:
            cache = self._header_cache = {}
        else:
            values = cache.get(key)
            if values is not None:
                return values
        values = cache[key] = _header_values(self.headers, key)
        return values

    def query(self, name: str) -> list[str] | None:
        """Every value of a query argument, URL-decoded; None when the argument is absent."""
        queries = self._queries
        if queries is None:
            queries = self._queries = _parse_query(self.query_string)
        return queries.get(name)

    def segments(self) -> list[str]:
        """The path's segments after the leading ``/``; a trailing ``/`` adds none."""
        segments = self._segments
        if segments is None:
            segments = self.path[1:].split("/")
            if segments[-1] == "":
                segments.pop()
            self._segments = segments
        return segments

    def src_ip(self) -> IpKey | None:
        """The client address as ``(version, integer)``; IPv4-mapped IPv6 counts as IPv4."""
        key = self._src_ip
        if key is _MISSING:
            key = self._src_ip = _ip_key(self.client[0] if self.client else None)
        return key

    def dst_ip(self) -> IpKey | None:
        """The gateway's own address the client connected to, as ``(version, integer)``."""
        key = self._dst_ip
        if key is _MISSING:
            key = self._dst_ip = _ip_key(self.server[0] if self.server else None)
        return key

    def src_port(self) -> int | None:
        """The client's port."""
        client = self.client
        return client[1] if client is not None else None

    def dst_port(self) -> int | None:
        """The gateway port the client connected to."""
        server = self.server
        return server[1] if server is not None else None

    # -- derived response facts -------------------------------------------------------------

    def response_header(self, key: bytes) -> list[str]:
        """Every value of a response header (empty before ``set_response``)."""
        cache = self._response_cache
        if cache is None:
            cache = self._response_cache = {}
        else:
            values = cache.get(key)
            if values is not None:
                return values
        values = cache[key] = _header_values(self.response_headers, key)
        return values


def _host_without_port(host: str | None) -> str | None:
    if not host:
        return None
    if host.startswith("["):
        # [v6]:port
        close = host.find("]")
        return host[: close + 1].lower() if close > 0 else host.lower()
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.lower()


def _header_values(raw: RawHeaders, key: bytes) -> list[str]:
    size = len(key)
    values: list[str] = []
    for name, value in raw:
        # Normalising only same-length names keeps the scan cheap: '-' -> '_' keeps length.
        if len(name) == size and (name == key or name.replace(b"-", b"_").lower() == key):
            values.append(value.decode("utf-8", "replace"))
    return values


def _parse_query(query: bytes) -> dict[str, list[str]]:
    args: dict[str, list[str]] = {}
    if not query:
        return args
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name:
            args.setdefault(_unquote(name), []).append(_unquote(value))
    return args


def _unquote(text: bytes) -> str:
    if b"%" in text or b"+" in text:
        text = unquote_to_bytes(text.replace(b"+", b" "))
    return text.decode("utf-8", "replace")


def _ip_key(text: str | None) -> IpKey | None:
    if not text:
        return None
    try:
        if ":" not in text:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        packed = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
    except (OSError, ValueError):
        return None
    if packed[:12] == _V4_MAPPED:
        return 4, int.from_bytes(packed[12:], "big")
    return 6, int.from_bytes(packed, "big")
