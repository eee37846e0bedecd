"""What the proxy hands the transport: the client's target verbatim, hosts as httpx parses them."""

from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from dataplane.headers import host_without_port
from dataplane.proxy import upstream_host, upstream_target

PATH_CHARS = st.sampled_from(list("abcXYZ019-._~/%?=&+:@!$'()*,;"))


@given(target=st.text(PATH_CHARS, max_size=40).map(lambda t: "/" + t))
def test_ascii_targets_go_upstream_verbatim(target: str) -> None:
    # no dot-segment removal, no re-quoting (httpx's URL parser would do both)
    assert upstream_target(target.encode()) == target.encode()


def test_non_ascii_bytes_are_percent_encoded() -> None:
    assert upstream_target("/caf\u00e9?q=\u00fc".encode()) == b"/caf%C3%A9?q=%C3%BC"


def test_a_fragment_is_not_sent() -> None:
    assert upstream_target(b"/a?b=1#frag") == b"/a?b=1"


def test_hosts_are_what_httpx_would_connect_to() -> None:
    for host in ("127.0.0.1", "Example.COM", "orders.internal", "b\u00fccher.example"):
        expected = httpx.URL(scheme="http", host=host).raw_host.decode("ascii")
        assert upstream_host(host) == expected


def test_host_without_port() -> None:
    assert host_without_port("shop.example:8000") == "shop.example"
    assert host_without_port("shop.example") == "shop.example"
    assert host_without_port("[::1]:8000") == "[::1]"
    assert host_without_port("[::1]") == "[::1]"
    assert host_without_port("") == ""
