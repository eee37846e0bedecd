"""Serialising request heads and framing bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from dataplane.transport.request import chunk, request_head


class Streamed(httpx.AsyncByteStream):
    """A body of unknown length."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"data"


def test_head_keeps_headers_as_given() -> None:
    request = httpx.Request(
        "GET",
        "http://upstream:8080/a%20b?q=1",
        headers=[(b"Host", b"api.example.com"), (b"X-Dup", b"1"), (b"x-dup", b"2")],
    )
    head = request_head(request)

    assert head.data == (
        b"GET /a%20b?q=1 HTTP/1.1\r\nHost: api.example.com\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n"
    )
    assert (head.body, head.chunked, head.head_only) == (b"", False, False)


def test_known_body_keeps_its_length() -> None:
    head = request_head(httpx.Request("POST", "http://u/", content=b"hello"))

    assert b"\r\nContent-Length: 5\r\n" in head.data
    assert head.body == b"hello"


def test_known_body_without_a_length_gets_one() -> None:
    request = httpx.Request("POST", "http://u/", stream=httpx.ByteStream(b"abc"))
    head = request_head(request)

    assert head.data.endswith(b"Content-Length: 3\r\n\r\n")
    assert head.body == b"abc"


def test_streamed_body_is_chunked() -> None:
    head = request_head(httpx.Request("POST", "http://u/", stream=Streamed()))

    assert head.data.endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    assert (head.body, head.chunked) == (None, True)


def test_streamed_body_with_a_length_is_not_chunked() -> None:
    request = httpx.Request("POST", "http://u/", stream=Streamed(), headers={"content-length": "4"})
    head = request_head(request)

    assert b"Transfer-Encoding" not in head.data
    assert (head.body, head.chunked) == (None, False)


def test_known_body_under_chunked_encoding_is_framed() -> None:
    request = httpx.Request(
        "POST", "http://u/", content=b"abc", headers={"transfer-encoding": "chunked"}
    )
    head = request_head(request)

    assert head.body == b"3\r\nabc\r\n0\r\n\r\n"
    assert head.chunked


def test_head_requests_expect_no_body() -> None:
    assert request_head(httpx.Request("HEAD", "http://u/")).head_only


@pytest.mark.parametrize(
    "headers",
    [[(b"X-Evil", b"a\r\nInjected: 1")], [(b"X-Evil", b"a\nb")], [(b"X-Ev\ril", b"a")]],
)
def test_line_breaks_in_headers_are_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(httpx.LocalProtocolError):
        request_head(httpx.Request("GET", "http://u/", headers=headers))


def test_chunk() -> None:
    assert chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
