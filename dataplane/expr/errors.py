"""Errors of the sampling language: every one says what is wrong and where."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RuleError", "RuleErrorDetail"]


@dataclass(frozen=True, slots=True)
class RuleErrorDetail:
    """One problem in a rule: a message and the character range ``[start, end)`` it is about."""

    message: str
    start: int
    end: int


class RuleError(ValueError):
    """A rule that does not compile; ``errors`` lists every problem found, first one first."""

    def __init__(self, errors: list[RuleErrorDetail]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.message} at {first.start}..{first.end}{more}")

    @classmethod
    def at(cls, message: str, start: int, end: int) -> RuleError:
        """A RuleError with a single problem."""
        return cls([RuleErrorDetail(message, start, end)])
