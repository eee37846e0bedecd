"""Printer: canonical text that parses back to the same tree."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest

from dataplane.expr.ast import Field, IpLiteral, Operator, Predicate, StringLiteral
from dataplane.expr.parser import parse
from dataplane.expr.printer import to_source

EXAMPLES = [
    'http.method == "GET"',
    'http.path ^= "/api/v2/" && !(http.headers.user_agent ~ r#"(?i)bot"#)',
    'net.src.ip in 10.0.0.0/8 || any(http.headers.x_debug) == "1"',
    '(http.method == "GET" && http.path ^= "/orders") || http.method == "DELETE"',
    "http.response.status >= 500 || latency.total_ms > 250",
    'lower(http.host) =^ ".example.com" && http.queries.tenant == "acme"',
]


@pytest.mark.parametrize("source", EXAMPLES)
def test_canonical_rules_print_as_written(source: str) -> None:
    assert to_source(parse(source)) == source


@pytest.mark.parametrize(
    ("source", "printed"),
    [
        ('http.method=="GET"&&http.path^="/a"', 'http.method == "GET" && http.path ^= "/a"'),
        ('((http.method == "GET"))', 'http.method == "GET"'),
        ("a == 1 && (b == 2 && c == 3)", "a == 1 && (b == 2 && c == 3)"),
        ("!((a == 1))", "!(a == 1)"),
        ("net.dst.port == 0x1F", "net.dst.port == 31"),
        ("net.dst.port == 017", "net.dst.port == 15"),
        ("net.dst.port == -5", "net.dst.port == -5"),
        ("net.src.ip == FD00:0:0:0::1", "net.src.ip == fd00::1"),
        ("net.src.ip in 2001:0db8::/32", "net.src.ip in 2001:db8::/32"),
        ("net.src.ip not in 10.0.0.0/8", "net.src.ip not in 10.0.0.0/8"),
        (r'a == "q\"b\\s\n\r\t"', r'a == "q\"b\\s\n\r\t"'),
        (r'a ~ r#"\d"#', r'a ~ r#"\d"#'),
        ('lower( any( a ) ) contains "x"', 'lower(any(a)) contains "x"'),
    ],
)
def test_output_is_canonical(source: str, printed: str) -> None:
    assert to_source(parse(source)) == printed
    assert parse(printed) == parse(source)


def test_a_raw_string_that_cannot_stay_raw_is_escaped() -> None:
    tree = Predicate(Field("a"), Operator.REGEX, StringLiteral('x"#y', raw=True))
    assert to_source(tree) == 'a ~ "x\\"#y"'
    assert parse(to_source(tree)) == tree


def test_ipv4_mapped_addresses_print_in_hex() -> None:
    tree = Predicate(Field("a"), Operator.EQ, IpLiteral(IPv6Address("::ffff:1.2.3.4")))
    printed = to_source(tree)
    assert "." not in printed.split("==")[1]
    assert parse(printed) == tree
