"""Host headers and route host patterns."""

from __future__ import annotations

import pytest

from dataplane.router.hosts import HostPattern, parse_host_header, parse_host_pattern


@pytest.mark.parametrize(
    ("pattern", "parsed"),
    [
        ("example.com", HostPattern("exact", "example.com", None)),
        ("Example.COM", HostPattern("exact", "example.com", None)),
        ("example.com:8080", HostPattern("exact", "example.com", 8080)),
        ("*.example.com", HostPattern("suffix", ".example.com", None)),
        ("*.example.com:443", HostPattern("suffix", ".example.com", 443)),
        ("example.*", HostPattern("prefix", "example.", None)),
        ("example.com:port", HostPattern("exact", "example.com", -1)),
    ],
)
def test_parse_host_pattern(pattern: str, parsed: HostPattern) -> None:
    assert parse_host_pattern(pattern) == parsed


@pytest.mark.parametrize(
    ("value", "scheme", "parsed"),
    [
        ("example.com", "http", ("example.com", 80)),
        ("example.com", "https", ("example.com", 443)),
        ("Example.com:8080", "http", ("example.com", 8080)),
        ("[::1]:8080", "http", ("[::1]", 8080)),
        ("[::1]", "https", ("[::1]", 443)),
        ("[::1", "http", ("[::1]", 80)),
        ("example.com:", "http", ("example.com", 80)),
        ("example.com:abc", "http", ("example.com", None)),
        ("example.com:\uff11\uff12", "http", ("example.com", None)),
        ("example.com:9999999", "http", ("example.com", None)),
        ("a:b:c", "http", ("a:b:c", 80)),
        ("", "http", ("", None)),
        (None, "http", ("", None)),
        ("example.com", "ws", ("example.com", None)),
    ],
)
def test_parse_host_header(value: str | None, scheme: str, parsed: tuple[str, int | None]) -> None:
    assert parse_host_header(value, scheme) == parsed
