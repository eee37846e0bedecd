"""rate-limiting: fixed-window request limits per second, minute, hour, day, month and year.

Kong's plugin with its ``local`` policy (counters in this process, kept across config changes)
and ``redis`` policy (counters shared by every node: one pipelined ``INCR`` + ``EXPIRE`` per
window, in one round trip). Windows are aligned to UTC calendar boundaries. Every request that
reaches the plugin counts, including rejected ones. When the request is traced, the Redis call
is a ``gateway.io.redis`` span under the plugin's span.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Self
from urllib.parse import quote

from pydantic import Field, model_validator
from redis.exceptions import RedisError

from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

if TYPE_CHECKING:
    from dataplane.exchange import Exchange
    from dataplane.plugins.host import PluginHost

__all__ = ["PERIODS", "PLUGIN", "RateLimitingConfig", "RateLimitingPlugin", "Window", "windows"]

log = logging.getLogger(__name__)

Period = Literal["second", "minute", "hour", "day", "month", "year"]
PERIODS: Final[tuple[Period, ...]] = ("second", "minute", "hour", "day", "month", "year")
_FIXED_SECONDS: Final = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_REDIS_FIELDS: Final = ("host", "port", "username", "password", "database", "timeout")
_HEADERS = "rate-limiting.headers"
_SWEEP_EVERY: Final = 4096  # local counters: drop ended windows every so many increments


class RateLimitingConfig(PluginConfig):
    """Kong's rate-limiting schema (Redis settings as the flat ``redis_*`` fields; Kong's
    nested ``redis`` record is accepted too)."""

    second: int | None = Field(default=None, gt=0)
    minute: int | None = Field(default=None, gt=0)
    hour: int | None = Field(default=None, gt=0)
    day: int | None = Field(default=None, gt=0)
    month: int | None = Field(default=None, gt=0)
    year: int | None = Field(default=None, gt=0)
    limit_by: Literal["consumer", "credential", "ip", "service", "header", "path"] = "consumer"
    header_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    path: str | None = Field(default=None, pattern=r"^/")
    policy: Literal["local", "redis"] = "local"
    fault_tolerant: bool = True
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_username: str | None = None
    redis_password: str | None = None
    redis_database: int = Field(default=0, ge=0)
    redis_timeout: int = Field(default=2000, gt=0, le=2**31 - 2)  # milliseconds
    hide_client_headers: bool = False
    error_code: int = Field(default=429, ge=100, le=599)
    error_message: str = "API rate limit exceeded"

    @model_validator(mode="before")
    @classmethod
    def _flatten_redis(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "redis" not in data:
            return data
        data = dict(data)
        nested = data.pop("redis")
        if nested is None:
            return data
        if not isinstance(nested, dict):
            raise ValueError("redis must be a record")
        for key, value in nested.items():
            if key not in _REDIS_FIELDS:
                raise ValueError(
                    f"redis.{key} is not supported (known: {', '.join(_REDIS_FIELDS)})"
                )
            data.setdefault(f"redis_{key}", value)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        limits = self.limits()
        if not limits:
            raise ValueError(f"at least one of {', '.join(PERIODS)} must be given")
        for index, (period, limit) in enumerate(limits):
            for longer, longer_limit in limits[index + 1 :]:
                if longer_limit < limit:
                    raise ValueError(
                        f"the limit for {longer} ({longer_limit}) cannot be lower than "
                        f"the limit for {period} ({limit})"
                    )
        if self.policy == "redis" and not self.redis_host:
            raise ValueError("the redis policy needs redis_host")
        if self.limit_by == "header" and not self.header_name:
            raise ValueError("limit_by 'header' needs header_name")
        if self.limit_by == "path" and not self.path:
            raise ValueError("limit_by 'path' needs path")
        return self

    def limits(self) -> list[tuple[Period, int]]:
        """The configured limits, shortest period first."""
        return [(p, limit) for p in PERIODS if (limit := getattr(self, p)) is not None]

    def redis_url(self) -> str:
        """``redis://`` URL of the configured server."""
        user = quote(self.redis_username or "", safe="")
        password = quote(self.redis_password or "", safe="")
        auth = f"{user}:{password}@" if user or password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_database}"


@dataclass(frozen=True, slots=True)
class Window:
    """One fixed window of a limit: [start, end) in unix seconds."""

    period: Period
    limit: int
    start: int
    end: int


class _Second:
    """The current windows during one whole second, and what their headers need that does
    not change within it (computed once per second, not per request)."""

    __slots__ = ("limit_headers", "names", "remaining_names", "resets", "second", "windows")

    def __init__(self, limits: Sequence[tuple[Period, int]], second: int) -> None:
        self.second = second
        self.windows = windows(limits, second)
        self.limit_headers = [(_LIMIT_HEADERS[w.period], b"%d" % w.limit) for w in self.windows]
        self.remaining_names = [_REMAINING_HEADERS[w.period] for w in self.windows]
        # RateLimit-Reset: ceil(end - now) is end - second for any now within this second.
        self.resets = [b"%d" % max(1, w.end - second) for w in self.windows]
        # Every name the headers of a request let through can have.
        self.names = frozenset(
            [name for name, _ in self.limit_headers]
            + self.remaining_names
            + [b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset"]
        )


def _window_bounds(period: Period, now: float) -> tuple[int, int]:
    fixed = _FIXED_SECONDS.get(period)
    if fixed is not None:
        start = int(now) // fixed * fixed
        return start, start + fixed
    day = datetime.fromtimestamp(now, UTC)
    if period == "month":
        begin = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        after = begin.replace(year=begin.year + begin.month // 12, month=begin.month % 12 + 1)
    else:
        begin = day.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        after = begin.replace(year=begin.year + 1)
    return int(begin.timestamp()), int(after.timestamp())


# Header names as stored in a HeaderList (lower-case bytes): the headers are built per request.
_LIMIT_HEADERS: Final = {p: f"x-ratelimit-limit-{p}".encode() for p in PERIODS}
_REMAINING_HEADERS: Final = {p: f"x-ratelimit-remaining-{p}".encode() for p in PERIODS}


def windows(limits: Sequence[tuple[Period, int]], now: float) -> list[Window]:
    """The current window of each limit."""
    return [Window(period, limit, *_window_bounds(period, now)) for period, limit in limits]


class RateLimitingPlugin(GatewayPlugin[RateLimitingConfig]):
    """429 over a limit; ``RateLimit-*`` and ``X-RateLimit-*`` headers on every response."""

    name = "rate-limiting"
    priority = 910
    config_model = RateLimitingConfig

    def __init__(self, config: RateLimitingConfig, *, plugin_id: str, host: PluginHost) -> None:
        super().__init__(config, plugin_id=plugin_id, host=host)
        self._limits = config.limits()
        # Local counters outlive config changes: (plugin, identifier, period) -> [start, end, n].
        self._local = host.state("rate-limiting")
        self._counters: dict[tuple[str, str, Period], list[int]] = self._local.setdefault(
            "counters", {}
        )
        # The current windows depend only on the whole second: computed once per second.
        self._current = _Second(self._limits, -1)
        self._redis = config.policy == "redis"

    async def access(self, exchange: Exchange) -> LocalReply | None:
        now = time.time()
        second = int(now)
        this = self._current
        if this.second != second:
            this = self._current = _Second(self._limits, second)
        current = this.windows
        identifier = self._identifier(exchange)
        try:
            if self._redis:
                counts = await self._count_redis(exchange, identifier, current, now)
            else:
                counts = self._count_local(identifier, current)
        except (RedisError, OSError) as exc:
            if not self.config.fault_tolerant:
                log.error("rate-limiting: failed to count the request: %s", exc)
                body = {
                    "message": "An unexpected error occurred",
                    "request_id": exchange.request_id,
                }
                return LocalReply.json(500, body, reason="redis_error")
            log.error("rate-limiting: failed to count, request let through: %s", exc)
            return None
        stop = None  # the longest window over its limit
        for index, window in enumerate(current):
            if counts[index] > window.limit:
                stop = window
        headers = [] if self.config.hide_client_headers else _headers(this, counts, stop)
        if stop is not None:
            body = {"message": self.config.error_message, "request_id": exchange.request_id}
            return LocalReply.json(
                self.config.error_code,
                body,
                tuple((name.decode(), value.decode()) for name, value in headers),
                reason=f"limit per {stop.period}",
            )
        if headers:
            exchange.plugin_data[_HEADERS] = (headers, this.names)
        return None

    def runs_in(self, phase: str) -> bool:
        if phase == "header_filter":
            return not self.config.hide_client_headers
        return super().runs_in(phase)

    async def header_filter(self, exchange: Exchange) -> None:
        headers = exchange.plugin_data.get(_HEADERS)
        if headers is not None:
            exchange.response_headers.set_raw(*headers)

    def _identifier(self, exchange: Exchange) -> str:
        """What the counters are kept for (the client IP when the configured one is missing)."""
        by = self.config.limit_by
        found: str | None = None
        if by == "service":
            found = exchange.service.id if exchange.service is not None else None
        elif by == "consumer":
            found = exchange.consumer.id if exchange.consumer is not None else None
            found = found or exchange.credential_id
        elif by == "credential":
            found = exchange.credential_id
        elif by == "header":
            assert self.config.header_name is not None
            found = exchange.request_headers.get(self.config.header_name)
        elif by == "path" and exchange.path.partition("?")[0] == self.config.path:
            found = self.config.path
        return found or exchange.client_ip

    def _count_local(self, identifier: str, current: list[Window]) -> list[int]:
        counters = self._counters
        counts = []
        for window in current:
            key = (self.plugin_id, identifier, window.period)
            slot = counters.get(key)
            if slot is None or slot[0] != window.start:
                slot = counters[key] = [window.start, window.end, 0]
            slot[2] += 1
            counts.append(slot[2])
        increments = self._local["increments"] = self._local.get("increments", 0) + 1
        if increments % _SWEEP_EVERY == 0:
            now = int(time.time())
            for key in [k for k, (_, end, _) in counters.items() if end <= now]:
                del counters[key]
        return counts

    async def _count_redis(
        self, exchange: Exchange, identifier: str, current: list[Window], now: float
    ) -> list[int]:
        config = self.config
        client = self.host.redis(config.redis_url(), timeout=config.redis_timeout / 1000)
        commands: list[tuple[str | int, ...]] = []
        for window in current:
            key = f"ratelimit:{self.plugin_id}:{identifier}:{window.start}:{window.period}"
            commands.append(("INCR", key))
            # Expire shortly after the window ends (same deadline whichever node sets it).
            commands.append(("EXPIRE", key, max(1, math.ceil(window.end - now)) + 1))
        results = await self.host.redis_pipeline(client, commands, exchange=exchange)
        return [int(count) for count in results[::2]]


def _headers(this: _Second, counts: list[int], stop: Window | None) -> list[tuple[bytes, bytes]]:
    """Kong's headers: per period, then ``RateLimit-*`` for the most constraining window (as
    a HeaderList stores them)."""
    if len(this.windows) == 1:  # the usual case, without the ranking
        left = b"%d" % max(0, this.windows[0].limit - counts[0])
        limit = this.limit_headers[0]
        reset = this.resets[0]
        headers = [
            limit,
            (this.remaining_names[0], left),
            (b"ratelimit-limit", limit[1]),
            (b"ratelimit-remaining", left),
            (b"ratelimit-reset", reset),
        ]
        if stop is not None:
            headers.append((b"retry-after", reset))
        return headers
    headers = []
    best = 0
    best_rank: tuple[int, int] | None = None  # (remaining, -length) of the best window
    best_remaining = b""
    for index, window in enumerate(this.windows):
        remaining = window.limit - (counts[index] - 1)  # usage before this request
        if stop is None or stop is window:
            remaining -= 1
        remaining = max(0, remaining)
        text = b"%d" % remaining
        rank = (remaining, window.start - window.end)
        if best_rank is None or rank < best_rank:
            best, best_rank, best_remaining = index, rank, text
        headers.append(this.limit_headers[index])
        headers.append((this.remaining_names[index], text))
    reset = this.resets[best]
    headers.append((b"ratelimit-limit", this.limit_headers[best][1]))
    headers.append((b"ratelimit-remaining", best_remaining))
    headers.append((b"ratelimit-reset", reset))
    if stop is not None:
        headers.append((b"retry-after", reset))
    return headers


PLUGIN = RateLimitingPlugin
