"""The response body as an httpx stream: chunks as they arrive, with backpressure."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from dataplane.transport.connection import ResponseReader
from dataplane.transport.errors import error_type
from dataplane.transport.events import BODY, BODY_COMPLETE, Trace
from dataplane.transport.upload import Upload

__all__ = ["ResponseStream"]


class ResponseStream(httpx.AsyncByteStream):
    """Yields body chunks as the upstream sends them; ``aclose()`` before the end closes the
    connection (an unread body cannot be skipped on a keep-alive connection)."""

    __slots__ = ("_done", "_reader", "_timeout", "_trace", "_upload")

    def __init__(
        self,
        reader: ResponseReader,
        timeout: float | None,
        trace: Trace | None,
        upload: Upload | None = None,
    ) -> None:
        self._reader = reader
        self._timeout = timeout
        self._trace = trace
        self._upload = upload
        self._done = False

    def read_buffered(self) -> bytes | None:
        """The whole body if it has already arrived (a small response usually comes in one
        packet with its head), ending the stream; None when there is more to wait for (iterate
        instead)."""
        reader = self._reader
        if self._done or not reader.complete or reader.error is not None:
            return None
        data = reader.take() if reader.chunks else b""
        self._end(None)
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        reader = self._reader
        while True:
            if reader.chunks:
                return reader.take()
            if reader.error is not None:
                self._end(reader.error)
                raise reader.error
            if reader.complete:
                self._end(None)
                raise StopAsyncIteration
            if self._done:
                raise httpx.StreamClosed()
            try:
                woken = await reader.wait(self._timeout)
            except BaseException as exc:  # cancelled while waiting: the exchange is abandoned
                self._abandon(exc)
                raise
            if not woken:
                timeout = httpx.ReadTimeout(f"no response body data for {self._timeout}s")
                self._abandon(timeout)
                raise timeout

    async def aclose(self) -> None:
        """Finish the exchange: nothing to do after the end, else close the connection."""
        if self._done:
            return
        reader = self._reader
        if reader.complete and reader.error is None:
            self._end(None)
        else:
            self._abandon(None)

    def _abandon(self, exc: BaseException | None) -> None:
        reader = self._reader
        if not reader.complete:
            reader.conn.abort()
        self._end(exc, closed=exc is None)

    def _end(self, exc: BaseException | None, *, closed: bool = False) -> None:
        if self._done:
            return
        self._done = True
        if self._upload is not None:
            self._upload.cancel()  # the response is over: the rest of the body is not needed
        trace = self._trace
        if trace is None:
            return
        size = self._reader.body_bytes
        if exc is not None:
            info = {"error_type": error_type(exc), "error": str(exc), "bytes": size}
            trace(BODY + ".failed", info)
        elif closed:
            info = {
                "error_type": "response_closed",
                "error": "closed before the end",
                "bytes": size,
            }
            trace(BODY + ".failed", info)
        else:
            trace(BODY_COMPLETE, {"bytes": size})
