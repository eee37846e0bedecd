"""http-log: send an entry per request (Kong's log serializer shape) to an HTTP collector.

Like OpenTelemetry's batch processor, it never holds up a request: entries go to a bounded
queue that one background task sends in batches (by size, or after ``max_coalescing_delay``),
retrying with backoff; a full queue drops entries and counts them. The entry of a *traced*
request is instead sent at once in the log phase (after the client has its response), so the
call is part of the trace as a ``gateway.io.http`` span; if that fails it joins the queue.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, Self
from urllib.parse import unquote

import httpx
from pydantic import Field, field_validator, model_validator

from dataplane.plugins.base import GatewayPlugin, PluginConfig
from dataplane.plugins.correlation_id import DATA_KEY as CORRELATION_ID
from dataplane.tracing.spans import now_ns

if TYPE_CHECKING:
    from dataplane.exchange import Exchange
    from dataplane.plugins.host import PluginHost

__all__ = ["PLUGIN", "HttpLogConfig", "HttpLogPlugin", "LogQueue", "QueueConfig", "log_entry"]

log = logging.getLogger(__name__)

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_RESERVED_HEADERS: Final = frozenset({"host", "content-length", "content-type"})
_DROP_LOG_EVERY: Final = 1000


class QueueConfig(PluginConfig):
    """Kong's queue parameters."""

    max_batch_size: int = Field(default=1, ge=1, le=1_000_000)
    max_coalescing_delay: float = Field(default=1.0, ge=0, le=3600)
    max_entries: int = Field(default=10_000, ge=1, le=1_000_000)
    max_retry_time: float = Field(default=60.0, ge=-1)  # -1: never retry
    initial_retry_delay: float = Field(default=0.01, ge=0.001, le=1_000_000)
    max_retry_delay: float = Field(default=60.0, ge=0.001, le=1_000_000)


class HttpLogConfig(PluginConfig):
    """Kong's http-log schema (``queue_size`` and ``flush_timeout`` map to ``queue``)."""

    http_endpoint: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    content_type: Literal["application/json", "application/json; charset=utf-8"] = (
        "application/json"
    )
    timeout: float = Field(default=10_000, gt=0)  # milliseconds
    keepalive: float = Field(default=60_000, ge=0)  # milliseconds; pooling is node-wide
    headers: dict[str, str] = Field(default_factory=dict)
    queue: QueueConfig = QueueConfig()

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        legacy = {"queue_size": "max_batch_size", "flush_timeout": "max_coalescing_delay"}
        if not any(key in data for key in (*legacy, "retry_count")):
            return data
        data = dict(data)
        data.pop("retry_count", None)  # no effect in Kong 3 either
        queue = data.get("queue")
        queue = dict(queue) if isinstance(queue, dict) else {}
        for old, new in legacy.items():
            if old in data:
                value = data.pop(old)
                if value is not None:
                    queue.setdefault(new, value)
        data["queue"] = queue
        return data

    @field_validator("http_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{value!r} must be an http:// or https:// URL with a host")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"cannot contain the {name!r} header")
            try:
                header_value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"header {name!r}: the value must be Latin-1 text") from None
        return value

    @model_validator(mode="after")
    def _one_authorization(self) -> Self:
        url = httpx.URL(self.http_endpoint)
        if url.userinfo and any(name.lower() == "authorization" for name in self.headers):
            raise ValueError(
                "specifying both an 'Authorization' header and user info in 'http_endpoint' "
                "is not allowed"
            )
        return self


class CollectorError(Exception):
    """The collector answered with a status that is not a success."""


def _ms(value: float) -> float:
    return round(value, 3)


def log_entry(exchange: Exchange, node_id: str) -> dict[str, Any]:
    """What Kong's log serializer produces for a request; secrets replaced by ``[REDACTED]``.

    Sizes are body sizes; latencies are milliseconds (``gateway``, alias ``kong``: time spent
    in the gateway; ``proxy``: waiting for the upstream, -1 when there was none).
    """
    query = exchange.redacted_query()
    uri = f"{exchange.path}?{query}" if query else exchange.path
    total_ms = exchange.total_ms
    if total_ms is None:
        total_ms = (time.perf_counter_ns() - exchange.started_ns) / 1e6
    upstream_ms = exchange.upstream_ms
    gateway_ms = total_ms - (upstream_ms or 0.0)
    started_unix_ns = exchange.started_ns + (now_ns() - time.perf_counter_ns())
    consumer = exchange.consumer
    entry: dict[str, Any] = {
        "request": {
            "id": exchange.request_id,
            "method": exchange.method,
            "uri": uri,
            "url": f"{exchange.scheme}://{exchange.host}{uri}",
            "querystring": exchange.query_map(),
            "headers": exchange.header_map(exchange.request_headers),
            "size": exchange.request_body_size,
        },
        "upstream_uri": f"{exchange.upstream_path}?{query}" if query else exchange.upstream_path,
        "response": {
            "status": exchange.response_status,
            "headers": exchange.header_map(exchange.response_headers),
            "size": exchange.response_body_size,
        },
        "latencies": {
            "request": _ms(total_ms),
            "proxy": _ms(upstream_ms) if upstream_ms is not None else -1,
            "gateway": _ms(gateway_ms),
            "kong": _ms(gateway_ms),
        },
        "route": exchange.route.model_dump(mode="json") if exchange.route else None,
        "service": exchange.service.model_dump(mode="json") if exchange.service else None,
        "consumer": (
            {"id": consumer.id, "username": consumer.username, "custom_id": consumer.custom_id}
            if consumer is not None
            else None
        ),
        "client_ip": exchange.client_ip,
        "started_at": started_unix_ns // 1_000_000,
        "source": exchange.response_source,
        "node_id": node_id,
    }
    if exchange.credential_id is not None:
        entry["authenticated_entity"] = {"id": exchange.credential_id}
    correlation_id = exchange.plugin_data.get(CORRELATION_ID)
    if correlation_id is not None:
        entry["correlation_id"] = correlation_id
    if exchange.trace is not None:
        entry["trace_id"] = exchange.trace.trace_id.hex()
    return entry


Deliver = Callable[[Sequence[bytes]], Awaitable[None]]


class LogQueue:
    """Encoded entries waiting for the collector: bounded, batched, sent by one task."""

    def __init__(
        self, config: QueueConfig, deliver: Deliver, host: PluginHost, stats: dict[str, int]
    ) -> None:
        self.config = config
        self._deliver = deliver
        self._host = host
        self.stats = stats
        self._entries: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, entry: bytes) -> bool:
        """Queue an entry without waiting; False (dropped and counted) when full or closed."""
        if self._stopping.is_set() or len(self._entries) >= self.config.max_entries:
            dropped = self.stats["dropped"] = self.stats.get("dropped", 0) + 1
            if dropped % _DROP_LOG_EVERY == 1:
                log.warning("http-log: queue full, %d entries dropped so far", dropped)
            return False
        self._entries.append(entry)
        if self._task is None:
            self._task = self._host.spawn(self._run())
        self._wakeup.set()
        return True

    async def close(self, timeout_secs: float) -> None:
        """Send what is queued (one attempt per batch, no coalescing), then stop."""
        self._stopping.set()
        self._wakeup.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_secs)
        except TimeoutError:
            self._task.cancel()
            lost = len(self._entries)
            self.stats["failed"] = self.stats.get("failed", 0) + lost
            log.warning("http-log: %d entries not sent before shutdown", lost)

    async def _run(self) -> None:
        while True:
            if not self._entries:
                if self._stopping.is_set():
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._coalesce()
            size = min(self.config.max_batch_size, len(self._entries))
            batch = [self._entries.popleft() for _ in range(size)]
            await self._send_with_retries(batch)

    async def _coalesce(self) -> None:
        """Wait until a batch is full or the first entry waited ``max_coalescing_delay``."""
        config = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.max_coalescing_delay
        while len(self._entries) < config.max_batch_size and not self._stopping.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _send_with_retries(self, batch: list[bytes]) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = config.initial_retry_delay
        while True:
            try:
                await self._deliver(batch)
            except (httpx.HTTPError, CollectorError) as exc:
                waited = loop.time() - started
                if (
                    self._stopping.is_set()
                    or config.max_retry_time < 0
                    or waited + delay > config.max_retry_time
                ):
                    self.stats["failed"] = self.stats.get("failed", 0) + len(batch)
                    log.error("http-log: %d entries not sent: %s", len(batch), exc)
                    return
                # Back off, but wake at once when the plugin is closed.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, config.max_retry_delay)
                continue
            self.stats["sent"] = self.stats.get("sent", 0) + len(batch)
            return


class HttpLogPlugin(GatewayPlugin[HttpLogConfig]):
    """Queues (or, for traced requests, sends) an entry per request in the log phase."""

    name = "http-log"
    priority = 12
    config_model = HttpLogConfig

    def __init__(self, config: HttpLogConfig, *, plugin_id: str, host: PluginHost) -> None:
        super().__init__(config, plugin_id=plugin_id, host=host)
        url = httpx.URL(config.http_endpoint)
        self._headers = {**config.headers, "content-type": config.content_type}
        if url.userinfo:
            credentials = unquote(url.userinfo.decode("latin-1")).encode("latin-1")
            self._headers["authorization"] = f"Basic {base64.b64encode(credentials).decode()}"
        self._url = str(url.copy_with(username=None, password=None))
        # Counters for the whole node (they outlive config changes): sent, dropped, failed.
        self.stats: dict[str, int] = host.state("http-log")
        self.queue = LogQueue(config.queue, self._send, host, self.stats)

    async def log(self, exchange: Exchange) -> None:
        entry = json.dumps(log_entry(exchange, self.host.node_id), separators=(",", ":")).encode()
        if exchange.trace is not None:
            try:
                await self._send([entry], exchange)
            except (httpx.HTTPError, CollectorError) as exc:
                log.warning("http-log: sending failed (%s); the entry is queued for retry", exc)
            else:
                self.stats["sent"] = self.stats.get("sent", 0) + 1
                return
        self.queue.put(entry)

    async def close(self) -> None:
        await self.queue.close(self.config.timeout / 1000 + 1)

    async def _send(self, entries: Sequence[bytes], exchange: Exchange | None = None) -> None:
        """One request to the collector: an object, or an array when batching is configured."""
        if self.config.queue.max_batch_size == 1:
            body = entries[0]
        else:
            body = b"[" + b",".join(entries) + b"]"
        response = await self.host.send_http(
            self.config.method,
            self._url,
            content=body,
            headers=self._headers,
            timeout_secs=self.config.timeout / 1000,
            exchange=exchange,
        )
        if response.status_code >= 300:
            raise CollectorError(
                f"{self._url} answered {response.status_code}: {response.text[:200]!r}"
            )


PLUGIN = HttpLogPlugin
