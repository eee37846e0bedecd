"""HTTP/1.1 header serialisation, shared by the client-facing server and the upstream transport.

:func:`header_block` is written in C (``dataplane/_http1.c``) when the package is built with
a compiler, and falls back to :func:`python_header_block`, the reference the tests hold the C
version to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["ACCELERATED", "header_block", "python_header_block"]

HeaderBlock = tuple[bytes, bytes | None, bool, bool]

_c_header_block: Callable[[bytes, Iterable[tuple[bytes, bytes]]], HeaderBlock] | None
try:
    from dataplane._http1 import header_block as _c_header_block
except ImportError:  # not built (no compiler where the package was installed)
    _c_header_block = None

ACCELERATED = _c_header_block is not None
"""Whether header blocks are built by the C extension."""


def header_block(first_line: bytes, headers: Iterable[tuple[bytes, bytes]]) -> HeaderBlock:
    """``first_line`` then ``name: value`` lines, with what framing needs to know of them.

    Returns ``(block, content_length, chunked, close)``: the bytes (without the blank line
    that ends a head); the last ``Content-Length`` value or None; whether a
    ``Transfer-Encoding`` value mentions ``chunked``; whether a ``Connection`` value mentions
    ``close`` (names and those words in any case). Raises ValueError when ``first_line`` does
    not end with CRLF or holds another CR or LF, or a name or value holds one (it would split
    the message).
    """
    if _c_header_block is not None:
        if not isinstance(headers, list | tuple):
            headers = list(headers)  # the C pass uses up an iterator; a fallback needs it too
        try:
            return _c_header_block(first_line, headers)
        except TypeError:
            pass  # not (bytes, bytes) pairs: the reference decides (bytearray is fine there)
    return python_header_block(first_line, headers)


def python_header_block(first_line: bytes, headers: Iterable[tuple[bytes, bytes]]) -> HeaderBlock:
    """:func:`header_block` in Python."""
    parts = [first_line]
    length: bytes | None = None
    chunked = close = False
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
        if len(name) in _FRAMING_LENGTHS:
            lowered = name.lower()
            if lowered == b"content-length":
                length = value
            elif lowered == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
            elif lowered == b"connection":
                close = close or b"close" in value.lower()
    block = b"".join(parts)
    # One CR and one LF per line, each ending it: any other would split the message.
    lines = len(parts) // 4 + 1
    if block.count(b"\n") != lines or block.count(b"\r") != lines or block[-2:] != b"\r\n":
        raise ValueError("CR or LF inside the first line or a header name or value")
    if first_line[-2:] != b"\r\n":
        raise ValueError("CR or LF inside the first line")
    return block, length, chunked, close


_FRAMING_LENGTHS = frozenset({10, 14, 17})  # connection, content-length, transfer-encoding
