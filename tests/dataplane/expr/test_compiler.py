"""Compiler: closure trees that agree with the semantics, decided once, never parsing."""

from __future__ import annotations

import itertools
import re

import pytest

from dataplane.expr import RequestFacts
from dataplane.expr.checker import check
from dataplane.expr.compiler import compile_expr
from dataplane.expr.parser import parse
from tests.dataplane.expr.conftest import FactsFactory

TRUE = 'http.method == "GET"'
FALSE = 'http.method == "POST"'


def _test(source: str, facts: RequestFacts) -> bool:
    tree = parse(source)
    assert check(tree).errors == []
    result = compile_expr(tree)(facts)
    assert isinstance(result, bool)
    return result


@pytest.mark.parametrize("size", range(2, 8))
def test_and_and_or_of_any_width_agree_with_all_and_any(
    make_facts: FactsFactory, size: int
) -> None:
    facts = make_facts()
    for values in itertools.product([True, False], repeat=size):
        parts = [TRUE if value else FALSE for value in values]
        assert _test(" && ".join(parts), facts) is all(values)
        assert _test(" || ".join(parts), facts) is any(values)


def test_and_stops_at_the_first_false(make_facts: FactsFactory) -> None:
    # The second predicate would fail on this path (None has no segments); it is never reached.
    facts = make_facts(path=None)
    assert _test(f'{FALSE} && http.path.segments.0 == "a"', facts) is False
    assert _test(f'{TRUE} || http.path.segments.0 == "a"', facts) is True


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('http.path ^= "/api"', True),
        ('http.path =^ "123"', True),
        ('http.path contains "v2"', True),
        ('http.path != "/"', True),
        ("http.path.segments.len > 3", True),
        ("http.path.segments.len >= 5", False),
        ("http.path.segments.len < 5", True),
        ("http.path.segments.len <= 3", False),
        ("net.src.port != 51234", False),
        ('lower(http.headers.x_tenant_id) == "acme"', True),
        ('lower(http.headers.x_tenant_id) != "acme"', False),
        ('any(lower(http.headers.accept)) ^= "text"', True),
        ('lower(any(http.headers.accept)) contains "json"', True),
        ('lower(http.path) ~ "^/api"', True),
        ('lower(http.host) == "api.example.com"', True),
        ('lower(tls.sni) == "api.example.com"', True),
    ],
)
def test_operator_closures(make_facts: FactsFactory, rule: str, expected: bool) -> None:
    assert _test(rule, make_facts()) is expected


def test_latency_is_compared_exactly(make_facts: FactsFactory) -> None:
    facts = make_facts(response={"total_ms": 250.4})
    assert _test("latency.total_ms > 250", facts)
    assert not _test("latency.total_ms == 250", facts)
    assert _test("latency.total_ms < 251", facts)


def test_an_address_of_the_other_family_is_not_in_a_cidr(make_facts: FactsFactory) -> None:
    v6 = make_facts(client=("fd00::1", 1))
    assert not _test("net.src.ip in 10.0.0.0/8", v6)
    assert _test("net.src.ip not in 10.0.0.0/8", v6)
    assert not _test("net.src.ip == 10.1.2.3", v6)
    assert _test("net.src.ip != 10.1.2.3", v6)


def test_evaluation_compiles_nothing(
    make_facts: FactsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluate = compile_expr(parse(r'http.path ~ r#"^/api/v\d"# && http.headers.x_debug ~ "1"'))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("regex compiled during evaluation")

    monkeypatch.setattr(re, "compile", forbidden)
    monkeypatch.setattr(re, "search", forbidden)
    assert evaluate(make_facts())


def test_absent_fields_are_false_whatever_the_operator(make_facts: FactsFactory) -> None:
    facts = make_facts(
        host=None, sni=None, client=None, server=None, headers=[], query_string=b"", path="/"
    )
    absent = [
        'http.host != "x"',
        'tls.sni != "x"',
        'http.headers.x != "x"',
        'any(http.headers.x) != "x"',
        'http.queries.x != "x"',
        'http.path.segments.0 != "x"',
        'http.path.segments.0_1 != "x"',
        "net.src.ip != 1.2.3.4",
        "net.src.ip not in 10.0.0.0/8",
        "net.dst.ip not in ::/0",
        "net.src.port != 1",
        "net.dst.port >= 0",
        "http.response.status != 1",
        'http.response.headers.x != "x"',
        "latency.total_ms >= 0",
        "latency.upstream_ms != 1",
        "latency.gateway_ms < 1",
    ]
    for rule in absent:
        assert _test(rule, facts) is False, rule
        assert _test(f"!({rule})", facts) is True, rule
