"""Keep-alive connections per origin: idle lists, idle timeout, optional per-origin limit."""

from __future__ import annotations

import asyncio
import time
from collections import deque

import httpx

from dataplane.transport.connection import Connection, Deadlines, Origin, wait_until_woken

__all__ = ["ConnectionPool"]


class ConnectionPool:
    """Idle connections by origin, most recently used first.

    A connection enters the pool only when its response ended on the wire with keep-alive
    (:meth:`release`); it leaves it when taken, closed by either side, or idle too long.
    With ``max_connections_per_origin`` set, callers wait (up to the pool timeout) for a slot.
    """

    def __init__(
        self,
        *,
        max_idle_per_origin: int = 100,
        idle_timeout: float = 60.0,
        max_connections_per_origin: int | None = None,
    ) -> None:
        self.max_idle_per_origin = max_idle_per_origin
        self.idle_timeout = idle_timeout
        self.max_connections_per_origin = max_connections_per_origin
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: dict[Origin, int] = {}
        self._waiters: dict[Origin, deque[asyncio.Future[bool]]] = {}
        self._connections: set[Connection] = set()
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        """How many connections are open (idle, busy or being opened)."""
        return len(self._connections)

    def idle(self, origin: Origin) -> int:
        """How many idle connections ``origin`` has."""
        return len(self._idle.get(origin, ()))

    def take(self, origin: Origin) -> Connection | None:
        """The most recently used live idle connection to ``origin``, if any."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if now - conn.idle_since > self.idle_timeout:
                conn.close()
                continue
            conn.reused = True
            return conn
        return None

    async def checkout(self, origin: Origin, seconds: float | None) -> Connection | None:
        """An idle connection, or None when the caller may open a new one.

        Under a per-origin limit, waits until a connection is released or closed, raising
        ``httpx.PoolTimeout`` after ``seconds``. The caller must open its connection (see
        :meth:`opened`) before its next ``await``, so no other request takes the free slot.
        """
        conn = self.take(origin)
        limit = self.max_connections_per_origin
        if conn is not None or limit is None:
            return conn
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while self._open.get(origin, 0) >= limit:
            waiter: asyncio.Future[bool] = loop.create_future()
            waiters = self._waiters.setdefault(origin, deque())
            waiters.append(waiter)
            try:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                if not await wait_until_woken(Deadlines.of(loop), waiter, remaining):
                    raise httpx.PoolTimeout(f"no free connection to {origin[1]}:{origin[2]}")
            finally:
                if waiter in waiters:
                    waiters.remove(waiter)
            conn = self.take(origin)
            if conn is not None:
                return conn
        return None

    def opened(self, conn: Connection) -> None:
        """Count and track a new connection (closed by :meth:`aclose`)."""
        self._connections.add(conn)
        if self.max_connections_per_origin is not None:
            self._open[conn.origin] = self._open.get(conn.origin, 0) + 1

    def release(self, conn: Connection) -> None:
        """A keep-alive response ended: keep ``conn`` for the next request to its origin."""
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= self.max_idle_per_origin:
            idle.pop(0).close()
        conn.idle_since = time.monotonic()
        idle.append(conn)
        if self._sweep is None:
            self._sweep = conn.loop.call_later(self.idle_timeout, self._close_expired, conn.loop)
        self._wake(conn.origin)

    def closed(self, conn: Connection) -> None:
        """``conn`` is closing: out of the idle list, and its slot is free."""
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)
        if self.max_connections_per_origin is not None:
            self._open[conn.origin] -= 1
            self._wake(conn.origin)

    def lost(self, conn: Connection) -> None:
        """``conn``'s socket is gone."""
        self._connections.discard(conn)

    async def aclose(self) -> None:
        """Close every connection, idle or busy, and wait (briefly) until their sockets are gone."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        connections = list(self._connections)
        for conn in connections:
            conn.abort()
        self._idle.clear()
        pending = [conn.done for conn in connections if not conn.done.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def _wake(self, origin: Origin) -> None:
        waiters = self._waiters.get(origin)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return

    def _close_expired(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweep = None
        now = time.monotonic()
        oldest = now
        for idle in self._idle.values():
            for conn in [c for c in idle if now - c.idle_since >= self.idle_timeout]:
                conn.close()
            if idle:
                oldest = min(oldest, idle[0].idle_since)
        if any(self._idle.values()):
            delay = max(0.05, oldest + self.idle_timeout - now)
            self._sweep = loop.call_later(delay, self._close_expired, loop)
