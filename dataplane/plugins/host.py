"""What the node lends its plugins: state that outlives a config, shared clients, late spans."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import redis.asyncio as redis

from dataplane.tracing.spans import Span

__all__ = ["PluginHost"]

LateSpans = Callable[[tuple[str, ...], bytes, Sequence[Span]], None]


class PluginHost:
    """Node-wide services for plugin instances (which are rebuilt on every config change)."""

    def __init__(
        self,
        *,
        node_id: str,
        http_transport: httpx.AsyncBaseTransport | None = None,
        late_spans: LateSpans | None = None,
    ) -> None:
        self.node_id = node_id
        self._state: dict[str, dict[Any, Any]] = {}
        self._redis: dict[str, redis.Redis] = {}
        self._http: httpx.AsyncClient | None = None
        self._http_transport = http_transport
        self._late_spans = late_spans
        self._tasks: set[asyncio.Task[Any]] = set()

    def state(self, key: str) -> dict[Any, Any]:
        """A dict that survives config changes (e.g. local rate-limiting counters)."""
        return self._state.setdefault(key, {})

    def redis(self, url: str) -> redis.Redis:
        """A shared Redis client for ``url``."""
        client = self._redis.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
            self._redis[url] = client
        return client

    def http(self) -> httpx.AsyncClient:
        """A shared HTTP client for calls plugins make (http-log)."""
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._http_transport)
        return self._http

    def export_late_spans(
        self, session_ids: tuple[str, ...], trace_id: bytes, spans: Sequence[Span]
    ) -> None:
        """Export spans of a trace that were finished after the trace itself (batched I/O)."""
        if self._late_spans is not None and spans:
            self._late_spans(session_ids, trace_id, spans)

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        """Run background work owned by the node (kept referenced until done)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Close shared clients and wait briefly for background work."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for client in self._redis.values():
            await client.aclose()
        if self._http is not None:
            await self._http.aclose()
