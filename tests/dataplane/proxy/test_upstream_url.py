"""The proxy's fast upstream URL equals what httpx's parser builds."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from dataplane.proxy import upstream_url

PATH_CHARS = st.sampled_from(list("abcXYZ019-._~/%?=&+:@!$'()*,;"))


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=st.sampled_from(["127.0.0.1", "Example.COM", "::1", "orders.internal"]),
    port=st.sampled_from([80, 443, 8080]),
    target=st.text(PATH_CHARS, max_size=40).map(lambda t: "/" + t),
)
def test_matches_httpx(scheme: str, host: str, port: int, target: str) -> None:
    raw = target.encode()
    fast = upstream_url(scheme, host, port, raw)
    slow = httpx.URL(scheme=scheme, host=host, port=port, raw_path=raw)
    assert (fast.raw_scheme, fast.raw_host, fast.port) == (
        slow.raw_scheme,
        slow.raw_host,
        slow.port,
    )
    # The client's target goes upstream verbatim (no dot-segment removal, no re-quoting).
    assert fast.raw_path == raw
    if "." not in target and "%" not in target:
        assert fast == slow


def test_non_ascii_bytes_are_percent_encoded() -> None:
    url = upstream_url("http", "h", 80, "/caf\u00e9?q=\u00fc".encode())
    assert url.raw_path == b"/caf%C3%A9?q=%C3%BC"
