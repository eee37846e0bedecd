"""Upstream name resolution with a TTL cache (and a short negative cache)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import TypeAlias

__all__ = ["Address", "Resolver", "ip_literal"]

Address: TypeAlias = tuple[socket.AddressFamily, str]
"""One answer: the address family and the IP as a string."""


def ip_literal(host: str) -> Address | None:
    """``host`` as an address when it is an IP literal (no DNS needed), else None."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return family, str(ip)


class Resolver:
    """Resolves host names with ``loop.getaddrinfo``; answers are cached for ``ttl`` seconds.

    Failures are cached for ``negative_ttl`` seconds so a broken name does not hammer the
    resolver; concurrent lookups of one name share a single query.
    """

    def __init__(self, *, ttl: float = 30.0, negative_ttl: float = 2.0) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._cache: dict[str, tuple[float, list[Address] | socket.gaierror]] = {}
        self._pending: dict[str, asyncio.Task[list[Address]]] = {}

    def clear(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    def pin(self, host: str, addresses: list[Address]) -> None:
        """Answer ``host`` with ``addresses`` (in this order) until :meth:`clear`, like a hosts
        file entry."""
        self._cache[host] = (float("inf"), list(addresses))

    async def resolve(self, host: str) -> tuple[list[Address], bool]:
        """The addresses of ``host`` in the resolver's preference order, and whether they came
        from the cache. Raises ``socket.gaierror`` when the name does not resolve."""
        cached = self._cache.get(host)
        if cached is not None:
            expires, answer = cached
            if time.monotonic() < expires:
                if isinstance(answer, socket.gaierror):
                    raise socket.gaierror(answer.errno, answer.strerror)
                return answer, True
            del self._cache[host]
        task = self._pending.get(host)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._query(host), name=host)
            self._pending[host] = task
            task.add_done_callback(self._query_done)
        # shielded: one caller giving up (timeout, cancel) must not fail the others' query
        return await asyncio.shield(task), False

    def _query_done(self, task: asyncio.Task[list[Address]]) -> None:
        self._pending.pop(task.get_name(), None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a query nobody waits for any more logs nothing

    async def _query(self, host: str) -> list[Address]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            self._cache[host] = (time.monotonic() + self.negative_ttl, exc)
            raise
        answers: list[Address] = []
        for family, _, _, _, sockaddr in infos:
            address = (family, str(sockaddr[0]))
            if family in (socket.AF_INET, socket.AF_INET6) and address not in answers:
                answers.append(address)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, f"no IPv4/IPv6 address for {host}")
        self._cache[host] = (time.monotonic() + self.ttl, answers)
        return answers
