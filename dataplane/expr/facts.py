"""What the data plane knows about one request (and later its response), as rules read it.

Built per request only when a session with a rule is active, so construction stores what it is
given plus the host's normal form (from a small process-wide cache: hosts repeat). Everything
else is derived on first use and cached: header values, query arguments and path segments on the
instance, parsed client and gateway addresses in another small process-wide cache.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Final
from urllib.parse import unquote_to_bytes

__all__ = ["RequestFacts"]

RawHeaders = Sequence[tuple[bytes, bytes]]
IpKey = tuple[int, int]  # (IP version, address as an integer)


_V4_MAPPED: Final = bytes(10) + b"\xff\xff"
_CACHE_SIZE: Final = 4096
_HOSTS: dict[str | None, str] = {}
_UNPARSED: Final = (0, 0)  # no real address has version 0
_ADDRESSES: dict[str, IpKey | None] = {}


class RequestFacts:
    """The evaluation context of a sampling rule: request facts, then response facts.

    Attributes hold the request as given, except ``host``, which is its normal form (no port,
    lower case), and after ``set_response`` the response (``status``, ``response_headers`` and
    the latencies), None until then. Methods return derived facts, computed once.
    """

    __slots__ = (
        "_header_cache",
        "_queries",
        "_response_cache",
        "_segments",
        "client",
        "gateway_ms",
        "headers",
        "host",
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
        # Hosts repeat across requests, so their normal form comes from a small cache.
        self.host = _HOSTS.get(host) or _normal_host(host)
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
        client = self.client
        return _ip_key(client[0]) if client is not None else None

    def dst_ip(self) -> IpKey | None:
        """The gateway's own address the client connected to, as ``(version, integer)``."""
        server = self.server
        return _ip_key(server[0]) if server is not None else None

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


def _normal_host(host: str | None) -> str | None:
    """``http.host``: the Host without its port, lower-cased; None when there is none."""
    if not host:
        return None
    normal = _host_without_port(host).lower()
    if len(_HOSTS) >= _CACHE_SIZE:
        _HOSTS.clear()
    _HOSTS[host] = normal
    return normal


def _host_without_port(host: str) -> str:
    if host.startswith("["):
        close = host.find("]")  # [v6]:port
        return host[: close + 1] if close > 0 else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else host


def _header_values(raw: RawHeaders, key: bytes) -> list[str]:
    size = len(key)
    # Normalising only same-length names keeps the scan cheap ('-' -> '_' keeps the length).
    return [
        value.decode("utf-8", "replace")
        for name, value in raw
        if len(name) == size and (name == key or name.replace(b"-", b"_").lower() == key)
    ]


def _parse_query(query: bytes) -> dict[str, list[str]]:
    args: dict[str, list[str]] = {}
    if not query:
        return args
    # Splitting text is much cheaper than splitting bytes; latin-1 keeps every byte as is.
    for part in query.decode("latin-1").split("&"):
        name, _, value = part.partition("=")
        if name:
            args.setdefault(_unquote(name), []).append(_unquote(value))
    return args


def _unquote(text: str) -> str:
    if "%" in text or "+" in text:
        return unquote_to_bytes(text.replace("+", " ").encode("latin-1")).decode("utf-8", "replace")
    if text.isascii():
        return text
    return text.encode("latin-1").decode("utf-8", "replace")


def _ip_key(text: str) -> IpKey | None:
    # Addresses repeat across requests, so parsed ones come from a small cache.
    key = _ADDRESSES.get(text, _UNPARSED)
    if key is _UNPARSED:
        key = _parse_ip(text)
        if len(_ADDRESSES) >= _CACHE_SIZE:
            _ADDRESSES.clear()
        _ADDRESSES[text] = key
    return key


def _parse_ip(text: str) -> IpKey | None:
    try:
        if ":" not in text:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        packed = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
    except (OSError, ValueError):
        return None
    if packed[:12] == _V4_MAPPED:
        return 4, int.from_bytes(packed[12:], "big")
    return 6, int.from_bytes(packed, "big")
