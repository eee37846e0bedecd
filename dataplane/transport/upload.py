"""Streaming a request body beside the wait for the response.

An upstream may answer before the body ends (413, 401, or an echo that streams back); sending
in its own task lets that response reach the caller instead of waiting on (or failing with)
the upload. Bodies known up front are written inline and never get here.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import httpx

from dataplane.transport.connection import Connection, ResponseReader
from dataplane.transport.errors import error_type
from dataplane.transport.events import NO_INFO, SEND, SEND_COMPLETE, Trace
from dataplane.transport.request import chunk

__all__ = ["Upload"]


class Upload:
    """Sends ``stream`` on ``conn`` in a task; wakes the reader when done or failed."""

    __slots__ = ("_conn", "_reader", "_seconds", "_trace", "done", "error", "task")

    def __init__(
        self,
        conn: Connection,
        reader: ResponseReader,
        stream: Any,
        *,
        chunked: bool,
        seconds: float | None,
        trace: Trace | None,
    ) -> None:
        self._conn = conn
        self._reader = reader
        self._seconds = seconds
        self._trace = trace
        self.done = False
        self.error: BaseException | None = None
        self.task = conn.loop.create_task(self._run(stream, chunked))

    def cancel(self) -> None:
        """Stop sending (the exchange is over or abandoned)."""
        if not self.task.done():
            self.task.cancel()

    async def _run(self, stream: Any, chunked: bool) -> None:
        try:
            await self._send(stream, chunked)
        except BaseException as exc:  # kept for the caller, who raises it unless answered
            self.error = exc
            if not self._reader.complete:
                self._conn.abort()
            if self._trace is not None:
                self._trace(SEND + ".failed", {"error_type": error_type(exc), "error": str(exc)})
        else:
            if self._trace is not None:
                self._trace(SEND_COMPLETE, NO_INFO)
        finally:
            self.done = True
            self._reader.wake()

    async def _send(self, stream: Any, chunked: bool) -> None:
        if not isinstance(stream, AsyncIterable):
            raise RuntimeError("UpstreamTransport needs an async request stream")
        conn, reader, seconds = self._conn, self._reader, self._seconds
        async for data in stream:
            if reader.complete or conn.closed:
                return  # answered (or gone): the rest is not needed; the connection is not reused
            if data:
                conn.write(chunk(data) if chunked else data)
                if not await conn.drain(seconds):
                    raise httpx.WriteTimeout(f"upstream took no request data for {seconds}s")
        if chunked:
            conn.write(b"0\r\n\r\n")
        reader.request_sent = True  # queued in order: the connection may be reused from here
