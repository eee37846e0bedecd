"""Wall-clock time for the control plane, replaceable in tests."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["Clock", "SystemClock"]


class Clock:
    """Interface: ``now()`` returns an aware UTC datetime."""

    def now(self) -> datetime:
        """The current time."""
        raise NotImplementedError


class SystemClock(Clock):
    """The real clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)
