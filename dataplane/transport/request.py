"""Serialising a request's head, and choosing how its body is framed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import httpx

from dataplane.http1 import header_block

__all__ = ["RequestHead", "chunk", "encode_head", "request_head"]

_METHODS: Final = {
    m: m.encode() for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
}
_LAST_CHUNK: Final = b"0\r\n\r\n"


class RequestHead:
    """What goes on the wire for one request.

    A slotted class, not a NamedTuple: a NamedTuple's fields are read through descriptors
    that CPython 3.11 does not specialize, and the transport reads these on every request.
    """

    __slots__ = ("body", "chunked", "data", "head_only")

    def __init__(self, data: bytes, body: bytes | None, chunked: bool, head_only: bool) -> None:
        self.data = data
        """Request line, headers and the blank line."""
        self.body = body
        """The whole (framed) body when it is known up front, so the request can be replayed;
        None when it streams from ``request.stream``."""
        self.chunked = chunked
        """Stream chunks need chunked framing."""
        self.head_only = head_only
        """The response has no body whatever its headers say (HEAD)."""


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def request_head(request: httpx.Request) -> RequestHead:
    """Serialise an httpx request's head (see :func:`encode_head`)."""
    url = request.url
    return encode_head(request.method, url.raw_path, request.headers.raw, _known_body(request))


def encode_head(
    method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes | None
) -> RequestHead:
    """Serialise a request head, headers as given; frame the body (None: it streams).

    Adds only ``Content-Length`` (a known body without one) or ``Transfer-Encoding: chunked``
    (a streamed body without a length). Raises ``httpx.LocalProtocolError`` for a header that
    would split the head (CR or LF inside a name or value).
    """
    first = b"%b %b HTTP/1.1\r\n" % (_METHODS.get(method) or method.encode("ascii"), target)
    try:
        block, length, chunked, _ = header_block(first, headers)
    except ValueError:
        raise httpx.LocalProtocolError(
            "CR or LF in a request header or the request target"
        ) from None
    if not chunked and length is None:
        if body is None:
            block += b"Transfer-Encoding: chunked\r\n"
            chunked = True
        elif body:
            block += b"Content-Length: %d\r\n" % len(body)
    data = block + b"\r\n"
    if chunked and body is not None:
        body = (chunk(body) if body else b"") + _LAST_CHUNK
    return RequestHead(data, body, chunked, method == "HEAD")


def _known_body(request: httpx.Request) -> bytes | None:
    stream = request.stream
    if not isinstance(stream, httpx.ByteStream):
        return None
    try:
        return request.content
    except httpx.RequestNotRead:
        return b"".join(stream)  # a ByteStream iterates synchronously, without I/O
