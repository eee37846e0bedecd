"""W3C trace context parsing and formatting."""

from __future__ import annotations

import pytest

from dataplane.tracing.recorder import format_traceparent, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_valid_traceparent_is_continued() -> None:
    parsed = parse_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert parsed == (bytes.fromhex(TRACE), bytes.fromhex(SPAN))


def test_future_versions_may_carry_more_fields() -> None:
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-extra") is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",
        f"00-{TRACE[:-1]}-{SPAN}-01",
    ],
)
def test_invalid_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None


def test_format_round_trips() -> None:
    value = format_traceparent(bytes.fromhex(TRACE), bytes.fromhex(SPAN))
    assert value == f"00-{TRACE}-{SPAN}-01"
    assert parse_traceparent(value) == (bytes.fromhex(TRACE), bytes.fromhex(SPAN))
