"""Fixtures for the sampling language tests: a request to evaluate rules against."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from dataplane.expr import RequestFacts

FactsFactory = Callable[..., RequestFacts]

# The request most tests evaluate; a test overrides only what it is about.
DEFAULT_REQUEST: dict[str, Any] = {
    "method": "GET",
    "host": "API.Example.com:8443",
    "path": "/api/v2/orders/123",
    "query_string": (b"tenant=acme&page=2&tag=a&tag=b&flag&q=hello+world&enc=%C3%A9t%C3%A9&empty="),
    "headers": [
        (b"host", b"API.Example.com:8443"),
        (b"user-agent", b"Mozilla/5.0 (compatible; Googlebot/2.1)"),
        (b"x-debug", b"1"),
        (b"accept", b"text/html"),
        (b"accept", b"application/json"),
        (b"x-tenant-id", b"Acme"),
        (b"content-type", b"application/json; charset=utf-8"),
    ],
    "scheme": "https",
    "sni": "api.example.com",
    "client": ("10.1.2.3", 51234),
    "server": ("192.168.1.10", 8443),
}
# What set_response receives when a test asks for a response ("response": True).
DEFAULT_RESPONSE: dict[str, Any] = {
    "status": 503,
    "headers": [(b"x-cache", b"MISS"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
    "total_ms": 312.5,
    "upstream_ms": 300.0,
    "gateway_ms": 12.5,
}


def build_facts(*, response: bool | dict[str, Any] = False, **overrides: Any) -> RequestFacts:
    """The default request with ``overrides``; ``response`` adds (possibly changed) response
    facts."""
    facts = RequestFacts(**{**DEFAULT_REQUEST, **overrides})
    if response:
        changes = response if isinstance(response, dict) else {}
        fields = {**DEFAULT_RESPONSE, **changes}
        headers: Sequence[tuple[bytes, bytes]] = fields["headers"]
        facts.set_response(
            fields["status"],
            headers,
            fields["total_ms"],
            fields["upstream_ms"],
            fields["gateway_ms"],
        )
    return facts


@pytest.fixture
def make_facts() -> FactsFactory:
    """Build RequestFacts for the default request, with keyword overrides."""
    return build_facts
