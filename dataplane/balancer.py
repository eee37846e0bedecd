"""Load balancing over an upstream's targets: smooth weighted round-robin with passive health.

The smooth weighted round-robin of nginx: each pick adds every healthy target's weight to its
current score, takes the highest and subtracts the total. With weights 5, 1, 1 the sequence is
``a a b a c a a`` rather than ``a a a a a b c``, so a heavy target never gets a burst.

Passive health checks follow Kong's counters: consecutive TCP failures, timeouts or HTTP
failures (statuses listed in ``http_statuses``) mark a target unhealthy once a counter reaches
its threshold (0 disables the counter); any success resets them. Without active checks an
unhealthy target is tried again after ``unhealthy_secs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dataplane.gateway_config import Target, Upstream

__all__ = ["Balancer", "Outcome", "TargetState"]

Outcome = Literal["ok", "tcp_failure", "timeout", "http_failure"]


@dataclass(slots=True)
class TargetState:
    """Balancing and health state of one target."""

    target: Target
    key: str
    current: int = 0
    tcp_failures: int = 0
    timeouts: int = 0
    http_failures: int = 0
    unhealthy_until: float = 0.0

    @property
    def host(self) -> str:
        """The target's host."""
        return self.target.host

    @property
    def port(self) -> int:
        """The target's port."""
        return self.target.port


class Balancer:
    """Picks targets of one upstream; state lives as long as the upstream's config is unchanged."""

    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream = upstream
        self._clock = clock
        self._passive = upstream.healthchecks.passive
        self.states = [
            TargetState(target, f"{target.host}:{target.port}")
            for target in upstream.targets
            if target.weight > 0
        ]

    def pick(self, exclude: frozenset[str] = frozenset()) -> TargetState | None:
        """The next healthy target whose ``host:port`` is not in ``exclude``, or None."""
        now = self._clock()
        total = 0
        best: TargetState | None = None
        for state in self.states:
            if state.key in exclude or state.unhealthy_until > now:
                continue
            weight = state.target.weight
            state.current += weight
            total += weight
            if best is None or state.current > best.current:
                best = state
        if best is not None:
            best.current -= total
        return best

    def report(self, state: TargetState, outcome: Outcome, status: int | None = None) -> None:
        """Record what proxying to ``state`` gave; may mark it unhealthy.

        With a response ``status`` the outcome is decided by ``http_statuses``.
        """
        passive = self._passive
        if status is not None:
            outcome = "http_failure" if status in passive.http_statuses else "ok"
        if outcome == "ok":
            state.tcp_failures = state.timeouts = state.http_failures = 0
            return
        if outcome == "tcp_failure":
            state.tcp_failures += 1
            tripped = passive.tcp_failures and state.tcp_failures >= passive.tcp_failures
        elif outcome == "timeout":
            state.timeouts += 1
            tripped = passive.timeouts and state.timeouts >= passive.timeouts
        else:
            state.http_failures += 1
            tripped = passive.http_failures and state.http_failures >= passive.http_failures
        if tripped:
            state.unhealthy_until = self._clock() + passive.unhealthy_secs
            state.tcp_failures = state.timeouts = state.http_failures = 0

    def healthy(self) -> list[str]:
        """``host:port`` of the targets currently considered healthy."""
        now = self._clock()
        return [s.key for s in self.states if s.unhealthy_until <= now]
