"""Error mapping and ``error.type`` names."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from dataplane.transport.errors import (
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamProtocolError,
    UpstreamReadError,
    connect_error,
    error_type,
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns_error"),
        (ConnectionRefusedError(111, "Connection refused"), "connection_refused"),
        (TimeoutError(), "connect_timeout"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls_error"),
        (OSError(113, "No route to host"), "connect_error"),
    ],
)
def test_connect_failures(exc: BaseException, kind: str) -> None:
    error = connect_error(exc, "upstream:80")

    assert isinstance(error, UpstreamConnectError)
    assert isinstance(error, httpx.ConnectError)
    assert error_type(error) == kind
    assert "upstream:80" in str(error)


def test_connect_timeout_is_both_a_connect_error_and_a_timeout() -> None:
    error = connect_error(TimeoutError(), "upstream:80")

    assert isinstance(error, UpstreamConnectTimeout)
    assert isinstance(error, httpx.ConnectTimeout)
    assert isinstance(error, httpx.TimeoutException)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("slow"), "read_timeout"),
        (httpx.WriteTimeout("slow"), "write_timeout"),
        (httpx.PoolTimeout("busy"), "pool_timeout"),
        (httpx.ConnectTimeout("slow"), "connect_timeout"),
        (httpx.ReadError("broken"), "read_error"),
        (httpx.WriteError("broken"), "write_error"),
        (httpx.RemoteProtocolError("bad"), "protocol_error"),
        (UpstreamReadError("reset", "connection_reset"), "connection_reset"),
        (UpstreamProtocolError("closed", "connection_closed"), "connection_closed"),
        (ConnectionResetError(), "connection_reset"),
        (ValueError("other"), "ValueError"),
    ],
)
def test_error_type_names(exc: BaseException, kind: str) -> None:
    assert error_type(exc) == kind


def test_timeout_kinds_say_timeout() -> None:
    """The proxy reports any kind containing ``timeout`` to the balancer as a timeout."""
    kinds = [
        error_type(exc)
        for exc in (
            httpx.ReadTimeout(""),
            httpx.WriteTimeout(""),
            httpx.PoolTimeout(""),
            connect_error(TimeoutError(), "u"),
        )
    ]

    assert all("timeout" in kind for kind in kinds)
