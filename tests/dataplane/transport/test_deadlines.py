"""Deadlines: every wait's timeout on a loop kept by one loop timer (both loops)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from dataplane.transport.connection import Deadlines, wait_until_woken

T = TypeVar("T")


async def within(awaitable: Awaitable[T]) -> T:
    """A timeout that never fires would hang the test: fail it instead."""
    return await asyncio.wait_for(awaitable, 5)


async def test_a_wait_nobody_wakes_ends_false_after_its_timeout() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines.of(loop)
    waiter: asyncio.Future[bool] = loop.create_future()
    started = loop.time()

    assert await within(wait_until_woken(deadlines, waiter, 0.05)) is False
    assert loop.time() - started >= 0.05 - 0.002  # the loop's clock has ms resolution
    assert len(deadlines) == 0


async def test_a_woken_wait_ends_true_and_leaves_no_entry() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines.of(loop)
    waiter: asyncio.Future[bool] = loop.create_future()
    loop.call_soon(waiter.set_result, True)

    assert await wait_until_woken(deadlines, waiter, 60) is True
    assert len(deadlines) == 0


async def test_waits_end_in_deadline_order_whatever_order_they_started() -> None:
    """A shorter wait started after a longer one re-arms the timer for itself; the longer one
    still ends, at its own deadline."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines.of(loop)
    ended: list[str] = []

    async def wait(name: str, seconds: float) -> None:
        waiter: asyncio.Future[bool] = loop.create_future()
        assert await within(wait_until_woken(deadlines, waiter, seconds)) is False
        ended.append(name)

    await asyncio.gather(wait("long", 0.15), wait("short", 0.03), wait("middle", 0.08))

    assert ended == ["short", "middle", "long"]
    assert len(deadlines) == 0


async def test_a_wait_with_an_equal_timeout_started_later_ends_later() -> None:
    """The steady state: each new wait's deadline is after the armed one (no re-arm)."""
    loop = asyncio.get_running_loop()
    deadlines = Deadlines.of(loop)
    first: asyncio.Future[bool] = loop.create_future()
    deadlines.add(first, 0.05)
    await asyncio.sleep(0.02)  # the second wait starts later (this is the setup, not a sync)
    second: asyncio.Future[bool] = loop.create_future()
    deadlines.add(second, 0.05)

    assert await within(first) is False
    assert not second.done()  # its own deadline is still ~20 ms away
    assert await within(second) is False


async def test_a_cancelled_wait_leaves_no_entry_and_other_waits_still_time_out() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines.of(loop)
    cancelled: asyncio.Future[bool] = loop.create_future()
    task = asyncio.ensure_future(wait_until_woken(deadlines, cancelled, 0.02))
    await asyncio.sleep(0)  # let it register
    assert len(deadlines) == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(deadlines) == 0

    other: asyncio.Future[bool] = loop.create_future()
    assert await within(wait_until_woken(deadlines, other, 0.05)) is False


async def test_a_waiter_already_done_is_left_as_it_is() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines.of(loop)
    waiter: asyncio.Future[bool] = loop.create_future()
    deadlines.add(waiter, 0.01)
    waiter.set_result(True)  # woken, but nobody discarded it yet
    marker: asyncio.Future[bool] = loop.create_future()

    assert await within(wait_until_woken(deadlines, marker, 0.05)) is False
    assert waiter.result() is True
    assert len(deadlines) == 0


async def test_each_loop_has_its_own_instance() -> None:
    loop = asyncio.get_running_loop()
    other = asyncio.new_event_loop()
    try:
        assert Deadlines.of(loop) is Deadlines.of(loop)
        assert Deadlines.of(other) is not Deadlines.of(loop)
    finally:
        other.close()
