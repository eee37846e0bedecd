"""The data plane's upstream HTTP/1.1 transport (asyncio protocols + httptools, keep-alive pool).

``UpstreamTransport`` implements httpx's ``AsyncBaseTransport``; its errors are httpx
exceptions, named for spans by :func:`error_type`; its ``trace`` request extension reports the
phases (DNS, connect, TLS, send, time to first byte, body) the proxy turns into spans.
"""

from dataplane.transport.errors import (
    UpstreamConnectError,
    UpstreamConnectTimeout,
    UpstreamProtocolError,
    UpstreamReadError,
    UpstreamWriteError,
    error_type,
)
from dataplane.transport.upstream import UpstreamResponse, UpstreamTransport

__all__ = [
    "UpstreamConnectError",
    "UpstreamConnectTimeout",
    "UpstreamProtocolError",
    "UpstreamReadError",
    "UpstreamResponse",
    "UpstreamTransport",
    "UpstreamWriteError",
    "error_type",
]
