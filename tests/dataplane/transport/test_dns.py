"""The resolver's cache."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dataplane.transport.dns import Resolver, ip_literal


def test_ip_literals_need_no_lookup() -> None:
    assert ip_literal("127.0.0.1") == (socket.AF_INET, "127.0.0.1")
    assert ip_literal("::1") == (socket.AF_INET6, "::1")
    assert ip_literal("localhost") is None


async def test_answers_are_cached_until_the_ttl() -> None:
    resolver = Resolver(ttl=30.0)
    answers, first_hit = await resolver.resolve("localhost")
    again, second_hit = await resolver.resolve("localhost")
    resolver.ttl = 0.0
    resolver.clear()
    await resolver.resolve("localhost")
    _, expired_hit = await resolver.resolve("localhost")

    assert (socket.AF_INET, "127.0.0.1") in answers
    assert again == answers
    assert (first_hit, second_hit, expired_hit) == (False, True, False)


async def test_failures_are_cached_briefly() -> None:
    resolver = Resolver(negative_ttl=30.0)
    with pytest.raises(socket.gaierror):
        await resolver.resolve("nonexistent.invalid")
    with pytest.raises(socket.gaierror):
        await resolver.resolve("nonexistent.invalid")  # from the negative cache

    assert "nonexistent.invalid" in resolver._cache


async def test_concurrent_lookups_share_one_query() -> None:
    resolver = Resolver()
    results = await asyncio.gather(*(resolver.resolve("localhost") for _ in range(5)))

    assert [hit for _, hit in results] == [False] * 5
    assert len({tuple(answers) for answers, _ in results}) == 1
    assert not resolver._pending


async def test_pinned_answers() -> None:
    resolver = Resolver(ttl=0.0)
    resolver.pin("nonexistent.invalid", [(socket.AF_INET, "127.0.0.9")])

    assert await resolver.resolve("nonexistent.invalid") == ([(socket.AF_INET, "127.0.0.9")], True)
    resolver.clear()
    with pytest.raises(socket.gaierror):
        await resolver.resolve("nonexistent.invalid")
