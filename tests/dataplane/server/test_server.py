"""The node's HTTP/1.1 server (dataplane.server) over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from dataplane.server import (
    MAX_HEAD_BYTES,
    RECEIVED_NS,
    RESPOND,
    ClientGone,
    HttpConnection,
    HttpServer,
)

Scope = dict[str, Any]
App = Callable[[Any, Any, Any], Awaitable[None]]


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(message["body"])
        if not message["more_body"]:
            return b"".join(chunks)


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Answers with the method, target and body it got (content-length framing)."""
    body = await read_body(receive)
    answer = json.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "body": body.decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "stamped": RECEIVED_NS in scope,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(answer)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


@asynccontextmanager
async def serving(app: App, **options: Any) -> AsyncIterator[tuple[HttpServer, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = HttpServer(app, "127.0.0.1", port, **options)
    task = asyncio.create_task(server.serve(sock=sock))
    try:
        yield server, port
    finally:
        server.should_exit = True
        await task
        sock.close()


class Client:
    """A raw HTTP/1.1 client that reads responses off the socket exactly."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers = await self.head()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = b""
        return status, headers, body

    async def closed(self) -> bool:
        """The server hung up: end of stream, or a reset when it closed with bytes of ours
        still unread (the kernel's answer then, not the server's choice)."""
        try:
            return await self.reader.read() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    try:
        yield client
    finally:
        writer.close()


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        for index in range(3):
            await client.send(b"GET /a/%d?x=1 HTTP/1.1\r\nHost: h\r\nX-Mixed: V\r\n\r\n" % index)
            status, headers, body = await client.response()
            seen = json.loads(body)
            assert status == 200
            assert seen["path"] == f"/a/{index}"
            assert seen["query"] == "x=1"
            assert ["x-mixed", "V"] in seen["headers"]  # names lower-cased, values kept
            assert seen["stamped"] is True
            assert "connection" not in headers


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(
            b"GET /1 HTTP/1.1\r\nhost: h\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc"
            b"GET /3 HTTP/1.1\r\nhost: h\r\n\r\n"
        )
        answers = [json.loads((await client.response())[2]) for _ in range(3)]
        assert [(a["path"], a["body"]) for a in answers] == [("/1", ""), ("/2", "abc"), ("/3", "")]


async def test_chunked_request_body_is_delivered_whole() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(
            b"POST /up HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        status, _, body = await client.response()
        assert status == 200
        assert json.loads(body)["body"] == "abcdefg"


async def test_percent_encoded_path_is_decoded_and_raw_path_kept() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(b"GET /a%20b HTTP/1.1\r\nhost: h\r\n\r\n")
        seen = json.loads((await client.response())[2])
        assert seen["path"] == "/a b"
        assert seen["raw_path"] == "/a%20b"


async def test_absolute_form_target_is_split_into_path_and_query() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(b"GET http://example.com/p?q=1 HTTP/1.1\r\nhost: example.com\r\n\r\n")
        seen = json.loads((await client.response())[2])
        assert seen["path"] == "/p"
        assert seen["query"] == "q=1"


async def streaming(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    for part in (b"one", b"two"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_response_without_length_is_chunked_and_head_has_no_body() -> None:
    async with serving(streaming) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, headers, body = await client.response()
        assert (status, headers["transfer-encoding"], body) == (200, "chunked", b"onetwo")
        await client.send(b"HEAD / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, headers = await client.head()
        assert status == 200
        assert headers["x-a"] == "1"
        # nothing follows the head: the next response starts right after it
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        assert (await client.response())[2] == b"onetwo"


async def test_head_is_sent_before_a_body_that_comes_later() -> None:
    release = asyncio.Event()

    async def slow_body(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 201, "headers": [(b"content-length", b"4")]}
        )
        await release.wait()
        await send({"type": "http.response.body", "body": b"done"})

    async with serving(slow_body) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, _headers = await client.head()  # arrives while the app still waits
        assert status == 201
        release.set()
        assert await client.reader.readexactly(4) == b"done"


async def test_expect_100_continue_gets_an_interim_response() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(
            b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
        )
        assert await client.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"ok")
        status, _, body = await client.response()
        assert status == 200
        assert json.loads(body)["body"] == "ok"


@pytest.mark.parametrize(
    "raw",
    [b"NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"],
)
async def test_malformed_requests_get_a_json_400_and_a_close(raw: bytes) -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(raw)
        status, headers, body = await client.response()
        assert status == 400
        assert headers["connection"] == "close"
        assert "not valid" in json.loads(body)["message"]
        assert await client.closed()


async def test_oversized_heads_get_431_in_one_piece_or_trickled() -> None:
    async with serving(echo) as (_, port):
        async with connect(port) as client:
            await client.send(b"GET / HTTP/1.1\r\nx-big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n")
            assert (await client.response())[0] == 431
            assert await client.closed()
        async with connect(port) as client:
            await client.send(b"GET / HTTP/1.1\r\n")
            for _ in range(MAX_HEAD_BYTES // 4096 + 2):
                await client.send(b"x-h: " + b"b" * 4090 + b"\r\n")
                if client.reader.at_eof():
                    break
            status, _, body = await client.response()
            assert status == 431
            assert json.loads(body)["message"].startswith("Request header")


async def test_http_10_closes_after_the_response() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(b"GET /old HTTP/1.0\r\n\r\n")
        status, headers, _ = await client.response()
        assert status == 200
        assert headers["connection"] == "close"
        assert await client.closed()


async def test_app_failure_before_the_response_is_a_500() -> None:
    async def broken(scope: Scope, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async with serving(broken) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, _, body = await client.response()
        assert status == 500
        assert json.loads(body) == {"message": "An unexpected error occurred"}
        assert await client.closed()


async def test_header_values_with_line_breaks_are_refused() -> None:
    async def injecting(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x", b"a\r\nset-cookie: s=1")],
            }
        )

    async with serving(injecting) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, headers, _ = await client.response()
        assert status == 500
        assert "set-cookie" not in headers


async def test_answer_before_the_body_is_read_keeps_the_connection() -> None:
    async def early(scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})

    async with serving(early) as (_, port), connect(port) as client:
        await client.send(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\n")
        assert (await client.response())[0] == 413
        await client.send(b"0123456789GET / HTTP/1.1\r\nhost: h\r\n\r\n")  # body, next request
        assert (await client.response())[0] == 413


async def test_client_disconnect_is_seen_by_receive() -> None:
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def waiting(scope: Scope, receive: Any, send: Any) -> None:
        message = await receive()
        while message["type"] == "http.request" and message["more_body"]:
            message = await receive()
        seen.set_result(message["type"])

    async with serving(waiting) as (_, port):
        async with connect(port) as client:
            await client.send(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 100\r\n\r\npart")
        assert await seen == "http.disconnect"


async def test_large_upload_is_read_with_backpressure() -> None:
    size = 5 * 1024 * 1024

    async def slow_reader(scope: Scope, receive: Any, send: Any) -> None:
        total = 0
        more = True
        while more:
            message = await receive()
            total += len(message["body"])
            more = message["more_body"]
            await asyncio.sleep(0)
        body = b"%d" % total
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async with serving(slow_reader) as (_, port), connect(port) as client:
        client.writer.write(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: %d\r\n\r\n" % size)
        client.writer.write(b"z" * size)
        await client.writer.drain()
        status, _, body = await client.response()
        assert status == 200
        assert int(body) == size


async def test_idle_keep_alive_connections_are_closed() -> None:
    async with serving(echo, keep_alive_timeout=0.1) as (server, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        await client.response()
        assert await client.closed()  # the idle sweep closes it
        assert not server.connections


async def test_shutdown_waits_for_requests_in_flight() -> None:
    running: list[str] = []
    both = asyncio.Event()
    release = asyncio.Event()

    async def slow(scope: Scope, receive: Any, send: Any) -> None:
        running.append(scope["path"])
        if len(running) == 2:
            both.set()
        await release.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async with serving(slow) as (server, port), connect(port) as first, connect(port) as second:
        await first.send(b"GET /1 HTTP/1.1\r\nhost: h\r\n\r\n")
        await second.send(b"GET /2 HTTP/1.1\r\nhost: h\r\n\r\n")
        await both.wait()
        server.should_exit = True
        release.set()
        for client in (first, second):
            status, headers, body = await client.response()
            assert (status, body, headers["connection"]) == (200, b"ok", "close")
            assert await client.closed()


async def test_upgrade_requests_are_served_as_http_then_closed() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(
            b"GET /ws HTTP/1.1\r\nhost: h\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
            b"\x81\x05hello"  # what a client would send once upgraded: not HTTP
        )
        status, headers, body = await client.response()
        assert status == 200
        assert json.loads(body)["path"] == "/ws"
        assert headers["connection"] == "close"
        assert await client.closed()


async def test_upgrade_requests_with_a_body_are_refused() -> None:
    # llhttp does not deliver an Upgrade request's body: forwarding its length would not do
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(
            b"POST /u HTTP/1.1\r\nhost: h\r\nconnection: upgrade\r\nupgrade: x\r\n"
            b"content-length: 5\r\n\r\nhello"
        )
        status, _, _ = await client.response()
        assert status == 400
        assert await client.closed()


async def early_answer(scope: Scope, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 401, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


async def test_an_early_answer_to_expect_continue_closes_the_connection() -> None:
    async with serving(early_answer) as (_, port), connect(port) as client:
        await client.send(
            b"POST / HTTP/1.1\r\nhost: h\r\nexpect: 100-continue\r\ncontent-length: 30\r\n\r\n"
        )
        status, headers, _ = await client.response()
        assert status == 401
        assert headers["connection"] == "close"  # the body was never asked for
        assert await client.closed()


async def test_an_app_failing_after_its_response_leaves_the_connection_alone() -> None:
    async def fails_late(scope: Scope, receive: Any, send: Any) -> None:
        await echo(scope, receive, send)
        if scope["path"] == "/late":
            raise RuntimeError("after the response")

    async with serving(fails_late) as (_, port), connect(port) as client:
        await client.send(
            b"GET /late HTTP/1.1\r\nhost: h\r\n\r\nGET /next HTTP/1.1\r\nhost: h\r\n\r\n"
        )
        assert (await client.response())[0] == 200
        status, _, body = await client.response()
        assert status == 200
        assert json.loads(body)["path"] == "/next"


async def test_a_client_leaving_mid_stream_stops_the_app() -> None:
    first_sent = asyncio.Event()
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def endless(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
                first_sent.set()
                await asyncio.sleep(0)
        except ClientGone:
            outcome.set_result("stopped")
            raise

    async with serving(endless) as (_, port):
        async with connect(port) as client:
            await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
            await first_sent.wait()
        assert await outcome == "stopped"


async def test_a_trickled_head_is_timed_from_its_first_byte() -> None:
    async with serving(echo, header_timeout=0.5) as (_, port), connect(port) as client:

        async def trickle() -> None:
            await client.send(b"GET / HTTP/1.1\r\n")
            while not client.reader.at_eof():
                await client.send(b"x-a: b\r\n")  # a byte now and then keeps it "active"
                await asyncio.sleep(0.2)

        trickling = asyncio.create_task(trickle())
        try:
            assert await asyncio.wait_for(client.closed(), timeout=10)
        finally:
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await trickling


async def test_no_body_bytes_after_204() -> None:
    async def no_content(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b"stray"})

    async with serving(no_content) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\nGET / HTTP/1.1\r\nhost: h\r\n\r\n")
        for _ in range(2):
            status, headers = await client.head()
            assert status == 204
            assert "transfer-encoding" not in headers


async def test_http_10_gets_a_close_delimited_body_not_chunks() -> None:
    async with serving(streaming) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        status, headers = await client.head()
        assert status == 200
        assert "transfer-encoding" not in headers
        assert headers["connection"] == "close"
        assert await client.reader.read() == b"onetwo"


async def test_too_many_pipelined_requests_close_the_connection() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n" * 1000)
        data = await client.reader.read()  # the connection closes; no 1,000 answers
        assert data.count(b"HTTP/1.1 200") < 1000


async def test_a_long_target_alone_is_held_to_the_head_limit() -> None:
    async with serving(echo) as (_, port), connect(port) as client:
        await client.send(b"GET /" + b"a" * (MAX_HEAD_BYTES + 10) + b" HTTP/1.1\r\n\r\n")
        assert (await client.response())[0] == 431


async def test_a_second_signal_cuts_the_shutdown_wait_short() -> None:
    started = asyncio.Event()

    async def never_answers(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = HttpServer(never_answers, "127.0.0.1", 0, shutdown_timeout=60)
    serving_task = asyncio.create_task(server.serve(sock=sock))
    try:
        async with connect(sock.getsockname()[1]) as client:
            await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
            await started.wait()
            server.should_exit = True  # first signal: waits for the request (up to 60 s)
            server.force_exit = True  # second signal: stop now
            await asyncio.wait_for(serving_task, timeout=10)
            answer = await client.reader.read()  # the cancelled request gets a 500, then EOF
            assert answer.startswith(b"HTTP/1.1 500 ")
    finally:
        serving_task.cancel()
        sock.close()


async def test_a_stalled_request_body_gets_408_and_a_close() -> None:
    waiting = asyncio.Event()
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def reader(scope: Scope, receive: Any, send: Any) -> None:
        message = await receive()
        while message["type"] == "http.request" and message["more_body"]:
            waiting.set()  # the next receive waits for bytes the client never sends
            message = await receive()
        seen.set_result(message["type"])

    async with serving(reader) as (server, port), connect(port) as client:
        await client.send(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 100\r\n\r\npart")
        await waiting.wait()
        now = asyncio.get_running_loop().time()
        server.sweep(now + 30)  # within client_body_timeout (60 s): nothing happens
        assert not seen.done()
        assert len(server.connections) == 1
        server.sweep(now + 61)
        status, headers, body = await asyncio.wait_for(client.response(), timeout=10)
        assert status == 408
        assert headers["connection"] == "close"
        assert "request body" in json.loads(body)["message"]
        assert await client.closed()
        assert await seen == "http.disconnect"


async def test_a_client_that_takes_no_response_data_is_disconnected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full = asyncio.Event()
    pause_writing = HttpConnection.pause_writing

    def paused(conn: HttpConnection) -> None:  # observed, not replaced
        pause_writing(conn)
        full.set()

    monkeypatch.setattr(HttpConnection, "pause_writing", paused)
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def flood(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        except ClientGone:
            outcome.set_result("stopped")
            raise

    async with serving(flood) as (server, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")  # and then reads nothing
        await asyncio.wait_for(full.wait(), timeout=10)  # the client's socket buffer filled
        now = asyncio.get_running_loop().time()
        server.sweep(now + 30)  # within send_timeout (60 s): the response waits
        assert not outcome.done()
        server.sweep(now + 61)
        assert await asyncio.wait_for(outcome, timeout=10) == "stopped"
        assert not server.connections


def whole(body: bytes, headers: list[tuple[bytes, bytes]]) -> App:
    """An app answering with ``respond`` (the one-call response), noting what it returned."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await read_body(receive)
        answered = scope[RESPOND](200, headers, body)
        assert answered is True

    return app


async def test_respond_writes_a_whole_response_and_keeps_the_connection() -> None:
    app = whole(b"hello", [(b"content-length", b"5"), (b"x-a", b"1")])
    async with serving(app) as (_, port), connect(port) as client:
        for _ in range(2):
            await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
            status, headers, body = await client.response()
            assert (status, headers["x-a"], body) == (200, "1", b"hello")
        await client.send(b"HEAD / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, headers = await client.head()
        assert (status, headers["content-length"]) == (200, "5")  # and no body follows
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        assert (await client.response())[2] == b"hello"


async def test_respond_without_a_length_frames_the_body_as_chunks() -> None:
    async with serving(whole(b"abc", [])) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, headers, body = await client.response()
        assert (status, headers["transfer-encoding"], body) == (200, "chunked", b"abc")
        await client.send(b"GET / HTTP/1.0\r\nhost: h\r\n\r\n")  # no chunks in HTTP/1.0
        status, headers = await client.head()
        assert "transfer-encoding" not in headers
        assert await client.reader.read() == b"abc"  # the close ends the body


async def test_respond_leaves_a_started_response_to_send() -> None:
    answers: list[bool] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        answers.append(scope[RESPOND](200, [], b"ignored"))
        await send({"type": "http.response.body", "body": b"sent"})

    async with serving(app) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, _, body = await client.response()
        assert (status, body, answers) == (201, b"sent", [False])


async def test_respond_refuses_a_body_that_contradicts_its_length() -> None:
    failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        try:
            scope[RESPOND](200, [(b"content-length", b"10")], b"short")
        except RuntimeError as exc:
            failed.set_result(str(exc))
            raise

    async with serving(app) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        assert "shorter than its content-length" in await asyncio.wait_for(failed, 10)
        # What there is goes out, then the close: the client can tell the body is incomplete.
        rest = await asyncio.wait_for(client.reader.read(), 10)  # returns at end of stream
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
        assert rest.endswith(b"\r\n\r\nshort")


async def test_respond_refuses_cr_or_lf_in_a_header() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        with pytest.raises(RuntimeError, match="CR or LF"):
            scope[RESPOND](200, [(b"x-a", b"1\r\nx-injected: 1")], b"")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(app) as (_, port), connect(port) as client:
        await client.send(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        status, headers = await client.head()
        assert status == 204
        assert "x-injected" not in headers
