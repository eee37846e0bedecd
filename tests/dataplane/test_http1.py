"""Header blocks: the C version answers exactly what the Python reference answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataplane import http1
from dataplane._http1 import header_block as c_header_block
from dataplane._http1 import raw_header as c_raw_header
from dataplane.headers import python_raw_header

HeaderBlock = Callable[[bytes, Sequence[Any]], tuple[bytes, bytes | None, bool, bool]]
BOTH: list[HeaderBlock] = [c_header_block, http1.python_header_block]

NAMES = st.sampled_from(
    [b"Content-Length", b"content-length", b"Transfer-Encoding", b"CONNECTION", b"host", b"x-a"]
) | st.binary(max_size=20)
VALUES = st.sampled_from([b"17", b"chunked", b"gzip, Chunked", b"keep-alive, close", b"Close"])
HEADERS = st.lists(st.tuples(NAMES, VALUES | st.binary(max_size=40)), max_size=12)
FIRST = st.sampled_from([b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n"]) | st.binary(max_size=30)


def outcome(function: HeaderBlock, first: bytes, headers: Sequence[Any]) -> object:
    try:
        return function(first, headers)
    except ValueError:
        return ValueError


@given(first=FIRST, headers=HEADERS)
def test_c_and_python_agree(first: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    assert outcome(c_header_block, first, headers) == outcome(
        http1.python_header_block, first, headers
    )


@pytest.mark.parametrize("header_block", BOTH)
def test_block_and_what_framing_needs(header_block: HeaderBlock) -> None:
    block, length, chunked, close = header_block(
        b"HTTP/1.1 200 OK\r\n",
        [
            (b"Content-Length", b"5"),
            (b"x-a", b"b"),
            (b"content-length", b"17"),
            (b"Transfer-Encoding", b"gzip, CHUNKED"),
            (b"Connection", b"Keep-Alive, Close"),
        ],
    )
    assert block == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-a: b\r\ncontent-length: 17\r\n"
        b"Transfer-Encoding: gzip, CHUNKED\r\nConnection: Keep-Alive, Close\r\n"
    )
    assert (length, chunked, close) == (b"17", True, True)  # the last Content-Length


@pytest.mark.parametrize("header_block", BOTH)
def test_no_framing_headers(header_block: HeaderBlock) -> None:
    assert header_block(b"GET / HTTP/1.1\r\n", [(b"host", b"a"), (b"connection", b"upgrade")]) == (
        b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\n",
        None,
        False,
        False,
    )
    assert header_block(b"GET / HTTP/1.1\r\n", []) == (b"GET / HTTP/1.1\r\n", None, False, False)


@pytest.mark.parametrize("header_block", BOTH)
@pytest.mark.parametrize(
    ("first", "headers"),
    [
        (b"GET / HTTP/1.1\r\n", [(b"x-a", b"b\r\nx-injected: 1")]),
        (b"GET / HTTP/1.1\r\n", [(b"x-a", b"b\n")]),
        (b"GET / HTTP/1.1\r\n", [(b"x-a\r", b"b")]),
        (b"GET /\r\nx: y HTTP/1.1\r\n", []),
        (b"GET / HTTP/1.1\n", []),
        (b"GET / HTTP/1.1", [(b"x-a", b"b")]),
        (b"", []),
    ],
)
def test_cr_or_lf_that_would_split_the_message_is_refused(
    header_block: HeaderBlock, first: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        header_block(first, headers)


def test_pairs_that_are_not_bytes_are_left_to_the_reference() -> None:
    untyped_c: Any = c_header_block  # called with what its signature does not allow
    untyped: Any = http1.header_block
    with pytest.raises(TypeError):
        untyped_c(b"GET / HTTP/1.1\r\n", [(b"x-a", "text")])
    with pytest.raises(TypeError):
        untyped_c(b"GET / HTTP/1.1\r\n", [(b"x-a", b"b", b"c")])
    # the public function falls back to Python, which takes any bytes-like value
    assert untyped(b"GET / HTTP/1.1\r\n", [(b"x-a", bytearray(b"b"))])[0] == (
        b"GET / HTTP/1.1\r\nx-a: b\r\n"
    )
    # an iterator the C pass used up is still whole for the fallback
    assert untyped(b"GET / HTTP/1.1\r\n", iter([(b"x-a", bytearray(b"b"))]))[0] == (
        b"GET / HTTP/1.1\r\nx-a: b\r\n"
    )
    assert untyped(b"GET / HTTP/1.1\r\n", iter([[b"x-a", b"b"]]))[0] == (
        b"GET / HTTP/1.1\r\nx-a: b\r\n"
    )


def test_the_extension_is_built() -> None:
    """The node serves with the C version (scripts/bootstrap and the Dockerfile build it)."""
    assert http1.ACCELERATED


# raw_header: the first value of a header in raw (name, value) pairs.

LOOKED_UP = st.sampled_from([b"host", b"traceparent", b"x-request-id", b"", b"Host"])


@given(headers=st.lists(st.tuples(NAMES | LOOKED_UP, VALUES), max_size=12), name=LOOKED_UP)
def test_raw_header_agrees_with_python(headers: list[tuple[bytes, bytes]], name: bytes) -> None:
    assert c_raw_header(headers, name) is python_raw_header(headers, name)
    assert c_raw_header(tuple(headers), name) is python_raw_header(headers, name)


@pytest.mark.parametrize("raw_header", [c_raw_header, python_raw_header])
def test_raw_header_takes_the_first_and_compares_exactly(
    raw_header: Callable[[Any, Any], bytes | None],
) -> None:
    headers = [(b"Host", b"upper"), (b"host", b"first"), [b"host", b"second"]]
    assert raw_header(headers, b"host") == b"first"
    assert raw_header(headers, b"HOST") is None
    assert raw_header([("host", b"str name")], b"host") is None  # str is not bytes
    assert raw_header([(bytearray(b"host"), b"v")], b"host") == b"v"  # compared by value
    assert raw_header([], b"host") is None
    assert raw_header(iter([(b"a", b"1")]), b"a") == b"1"


@pytest.mark.parametrize("raw_header", [c_raw_header, python_raw_header])
def test_raw_header_refuses_what_is_not_pairs(
    raw_header: Callable[[Any, Any], bytes | None],
) -> None:
    with pytest.raises(ValueError, match=r"pairs|unpack"):
        raw_header([(b"host", b"v", b"extra")], b"host")
    with pytest.raises(TypeError):
        raw_header(None, b"host")


@pytest.mark.parametrize("raw_header", [c_raw_header, python_raw_header])
def test_raw_header_survives_a_key_that_changes_the_list(
    raw_header: Callable[[Any, Any], bytes | None],
) -> None:
    headers: list[Any] = []

    class Meddling:
        def __eq__(self, other: object) -> bool:
            headers.clear()
            return False

        __hash__ = None  # type: ignore[assignment]

    headers[:] = [(Meddling(), b"a"), (b"host", b"b")]
    assert raw_header(headers, b"host") is None  # the list emptied under it


@pytest.mark.parametrize("raw_header", [c_raw_header, python_raw_header])
def test_raw_header_unpacks_any_pair(raw_header: Callable[[Any, Any], bytes | None]) -> None:
    from collections import namedtuple

    pair = namedtuple("pair", "name value")
    assert raw_header([pair(b"host", b"h")], b"host") == b"h"
    assert raw_header([iter((b"host", b"i"))], b"host") == b"i"
    with pytest.raises(TypeError):
        raw_header([5], b"host")
