"""Host names: the request's Host header and the host patterns routes list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["HostPattern", "parse_host_header", "parse_host_pattern"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of ``route.hosts``.

    ``kind`` is ``exact`` (``key`` is the name), ``suffix`` (``*.example.com``, ``key`` is
    ``.example.com``) or ``prefix`` (``example.*``, ``key`` is ``example.``). ``port`` is None
    when the pattern names no port, which matches any port.
    """

    kind: Literal["exact", "suffix", "prefix"]
    key: str
    port: int | None


def parse_host_pattern(host: str) -> HostPattern:
    """Read a route host: ``name``, ``*.name``, ``name.*``, each optionally with ``:port``."""
    host = host.strip().lower()
    port: int | None = None
    if host.count(":") == 1:
        host, _, port_text = host.partition(":")
        port = int(port_text) if port_text.isascii() and port_text.isdigit() else -1
    if host.startswith("*."):
        return HostPattern("suffix", host[1:], port)
    if host.endswith(".*"):
        return HostPattern("prefix", host[:-1], port)
    return HostPattern("exact", host, port)


def parse_host_header(value: str | None, scheme: str) -> tuple[str, int | None]:
    """The request's host name (lower case) and port.

    A Host header without a port means the scheme's default port; an unreadable port is None,
    which no route that names a port matches.
    """
    if not value:
        return "", None
    value = value.strip().lower()
    if value.startswith("["):  # an IPv6 literal: [::1]:8080
        name, _, rest = value.partition("]")
        name += "]"
        port_text = rest[1:] if rest.startswith(":") else rest
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:
        name, port_text = value, ""
    if not port_text:
        return name, _DEFAULT_PORTS.get(scheme.lower())
    if port_text.isascii() and port_text.isdigit() and len(port_text) <= 5:
        return name, int(port_text)
    return name, None
