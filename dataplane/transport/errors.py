"""Errors of the upstream transport, and their stable ``error.type`` names.

Every foreign exception (``OSError``, ``ssl.SSLError``, ``socket.gaierror``, parser errors) is
mapped once, here, into httpx's hierarchy; :func:`error_type` names any of them for spans.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

import httpx

__all__ = [
    "UpstreamConnectError",
    "UpstreamConnectTimeout",
    "UpstreamProtocolError",
    "UpstreamReadError",
    "UpstreamWriteError",
    "connect_error",
    "error_type",
]


class UpstreamConnectError(httpx.ConnectError):
    """Nothing was sent: DNS failure, refused or failed TCP connect, TLS handshake failure."""

    def __init__(self, message: str, kind: str = "connect_error") -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamConnectTimeout(UpstreamConnectError, httpx.ConnectTimeout):
    """Connecting (DNS, TCP or TLS) took longer than the connect timeout; nothing was sent."""

    def __init__(self, message: str, kind: str = "connect_timeout") -> None:
        super().__init__(message, kind)


class UpstreamReadError(httpx.ReadError):
    """Reading the response failed at the socket (e.g. connection reset)."""

    def __init__(self, message: str, kind: str = "read_error") -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamWriteError(httpx.WriteError):
    """Writing the request failed at the socket."""

    def __init__(self, message: str, kind: str = "write_error") -> None:
        super().__init__(message)
        self.kind = kind


class UpstreamProtocolError(httpx.RemoteProtocolError):
    """The upstream broke HTTP/1.1: unparseable bytes, or closed before the message ended."""

    def __init__(self, message: str, kind: str = "protocol_error") -> None:
        super().__init__(message)
        self.kind = kind


_KINDS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (httpx.ConnectTimeout, "connect_timeout"),
    (httpx.ReadTimeout, "read_timeout"),
    (httpx.WriteTimeout, "write_timeout"),
    (httpx.PoolTimeout, "pool_timeout"),
    (httpx.ConnectError, "connect_error"),
    (httpx.RemoteProtocolError, "protocol_error"),
    (httpx.ReadError, "read_error"),
    (httpx.WriteError, "write_error"),
    (socket.gaierror, "dns_error"),
    (ssl.SSLError, "tls_error"),
    (ssl.CertificateError, "tls_error"),
    (ConnectionRefusedError, "connection_refused"),
    (ConnectionResetError, "connection_reset"),
    (BrokenPipeError, "connection_reset"),
    (TimeoutError, "timeout"),
)


def error_type(exc: BaseException) -> str:
    """A stable snake_case name for ``exc``, used as the OpenTelemetry ``error.type``.

    Our own errors carry their kind (``dns_error``, ``connection_refused``, ``tls_error``,
    ``connection_reset``, ``connection_closed``...); other exceptions are named by class.
    """
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        return kind
    for cls, name in _KINDS:
        if isinstance(exc, cls):
            return name
    return type(exc).__name__


def connect_error(exc: BaseException, what: str) -> UpstreamConnectError:
    """Map a failure while connecting to ``what`` to an :class:`UpstreamConnectError`."""
    if isinstance(exc, UpstreamConnectError):
        return exc
    if isinstance(exc, TimeoutError):
        return UpstreamConnectTimeout(f"timed out connecting to {what}")
    if isinstance(exc, socket.gaierror):
        return UpstreamConnectError(f"cannot resolve {what}: {exc.strerror or exc}", "dns_error")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return UpstreamConnectError(f"TLS handshake with {what} failed: {exc}", "tls_error")
    if isinstance(exc, ConnectionRefusedError):
        return UpstreamConnectError(f"connection to {what} refused", "connection_refused")
    return UpstreamConnectError(f"cannot connect to {what}: {exc}", "connect_error")
