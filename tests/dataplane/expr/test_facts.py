"""RequestFacts: what rules read, derived once and cached."""

from __future__ import annotations

import pytest

from dataplane.expr import RequestFacts
from tests.dataplane.expr.conftest import FactsFactory


def test_construction_only_stores_and_has_no_instance_dict(make_facts: FactsFactory) -> None:
    facts = make_facts()
    assert not hasattr(facts, "__dict__")
    assert facts.method == "GET"
    assert facts.path == "/api/v2/orders/123"
    assert facts.scheme == "https"
    assert facts.sni == "api.example.com"


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("API.Example.com:8443", "api.example.com"),
        ("example.com", "example.com"),
        ("example.com:", "example.com:"),
        ("example.com:http", "example.com:http"),
        ("[::1]:8080", "[::1]"),
        ("[FD00::1]", "[fd00::1]"),
        ("[::1", "[::1"),
        ("::1", "::1"),
        ("10.0.0.1:80", "10.0.0.1"),
        ("", None),
        (None, None),
    ],
)
def test_host_is_without_port_and_lower_case(
    make_facts: FactsFactory, host: str | None, normal: str | None
) -> None:
    assert make_facts(host=host).host == normal
    assert make_facts(host=host).host == normal  # and again, from the cache


def test_header_values_by_field_name(make_facts: FactsFactory) -> None:
    facts = make_facts(
        headers=[
            (b"accept", b"a"),
            (b"x-tenant-id", b"t"),
            (b"accept", b"b"),
            (b"x_tenant-id", b"u"),
            (b"x-name", "été".encode()),
            (b"x-bad", b"\xff"),
        ]
    )
    assert facts.header(b"accept") == ["a", "b"]
    assert facts.header(b"x_tenant_id") == ["t", "u"]
    assert facts.header(b"x_name") == ["été"]
    assert facts.header(b"x_bad") == ["\ufffd"]
    assert facts.header(b"missing") == []
    assert facts.header(b"accept") is facts.header(b"accept")


def test_query_arguments_are_decoded(make_facts: FactsFactory) -> None:
    facts = make_facts(query_string=b"a=1&a=2&b&c=&d=x+y%2Bz&%C3%A9=%C3%A9&e=%ff&&=x&f=caf\xc3\xa9")
    assert facts.query("a") == ["1", "2"]
    assert facts.query("b") == [""]
    assert facts.query("c") == [""]
    assert facts.query("d") == ["x y+z"]
    assert facts.query("é") == ["é"]
    assert facts.query("e") == ["\ufffd"]
    assert facts.query("f") == ["café"]
    assert facts.query("") is None
    assert facts.query("missing") is None
    assert make_facts(query_string=b"").query("a") is None


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("/a/b/c", ["a", "b", "c"]),
        ("/a/b/c/", ["a", "b", "c"]),
        ("/", []),
        ("", []),
        ("/a//b", ["a", "", "b"]),
        ("/a/b//", ["a", "b", ""]),
        ("*", []),
    ],
)
def test_path_segments(make_facts: FactsFactory, path: str, segments: list[str]) -> None:
    facts = make_facts(path=path)
    assert facts.segments() == segments
    assert facts.segments() is facts.segments()


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("10.1.2.3", (4, 0x0A010203)),
        ("::1", (6, 1)),
        ("::ffff:10.1.2.3", (4, 0x0A010203)),
        ("fe80::1%eth0", (6, 0xFE80 << 112 | 1)),
        ("not an address", None),
        ("10.1.2.3.4", None),
        ("", None),
        ("1\x00", None),
    ],
)
def test_addresses_are_keys_of_version_and_integer(
    make_facts: FactsFactory, address: str, key: tuple[int, int] | None
) -> None:
    facts = make_facts(client=(address, 1), server=(address, 2))
    assert facts.src_ip() == key
    assert facts.dst_ip() == key
    assert facts.src_ip() == key  # cached


def test_ports_and_absent_endpoints(make_facts: FactsFactory) -> None:
    facts = make_facts()
    assert (facts.src_port(), facts.dst_port()) == (51234, 8443)
    bare = make_facts(client=None, server=None)
    assert (bare.src_ip(), bare.dst_ip(), bare.src_port(), bare.dst_port()) == (None,) * 4


def test_response_facts_arrive_with_set_response(make_facts: FactsFactory) -> None:
    facts = make_facts()
    assert (facts.status, facts.total_ms, facts.upstream_ms, facts.gateway_ms) == (None,) * 4
    assert facts.response_header(b"x_cache") == []
    facts.set_response(502, [(b"x-cache", b"MISS"), (b"x-cache", b"HIT")], 12.5, None, 12.5)
    assert facts.status == 502
    assert facts.response_header(b"x_cache") == ["MISS", "HIT"]
    assert (facts.total_ms, facts.upstream_ms, facts.gateway_ms) == (12.5, None, 12.5)


def test_keyword_only_construction() -> None:
    with pytest.raises(TypeError):
        RequestFacts("GET")  # type: ignore[call-arg]
