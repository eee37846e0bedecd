"""Properties (hypothesis): printing round-trips, evaluation never raises, parsing never crashes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane.expr import RequestFacts, RuleError, compile_rule, validate_rule
from dataplane.expr.ast import (
    And,
    CidrLiteral,
    Expr,
    Field,
    IntLiteral,
    IpLiteral,
    Lhs,
    Literal,
    Not,
    Operator,
    Or,
    Predicate,
    StringLiteral,
    Transform,
)
from dataplane.expr.parser import parse
from dataplane.expr.printer import to_source

# Modest sizes keep the whole directory well under its time budget; no example database, so
# runs leave nothing behind in the checkout.
SETTINGS = settings(max_examples=250, deadline=None, database=None)

# -- syntax trees -----------------------------------------------------------------------------

_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.]{0,16}", fullmatch=True)
_fields = st.builds(lambda name: Field(name), _names)
_lhs: st.SearchStrategy[Lhs] = st.recursive(
    _fields,
    lambda inner: st.builds(
        lambda func, arg: Transform(func, arg), st.sampled_from(["lower", "any"]), inner
    ),
    max_leaves=3,
)


def _network(address: IPv4Address | IPv6Address, prefix: int) -> CidrLiteral:
    return CidrLiteral(
        ip_network(f"{address}/{prefix % (address.max_prefixlen + 1)}", strict=False)
    )


_literals: st.SearchStrategy[Literal] = st.one_of(
    st.builds(lambda text, raw: StringLiteral(text, raw=raw), st.text(max_size=12), st.booleans()),
    st.builds(lambda value: IntLiteral(value), st.integers(-(2**63) + 1, 2**63 - 1)),
    st.builds(lambda address: IpLiteral(address), st.ip_addresses()),
    st.builds(_network, st.ip_addresses(), st.integers(0, 128)),
)
_predicates = st.builds(
    lambda lhs, op, rhs: Predicate(lhs, op, rhs), _lhs, st.sampled_from(list(Operator)), _literals
)


def _combine(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    operands = st.lists(inner, min_size=2, max_size=4).map(tuple)
    return st.one_of(
        st.builds(lambda operand: Not(operand), inner),
        operands.map(lambda items: And(items)),
        operands.map(lambda items: Or(items)),
    )


_exprs: st.SearchStrategy[Expr] = st.recursive(_predicates, _combine, max_leaves=8)


@SETTINGS
@given(_exprs)
def test_printing_then_parsing_gives_the_same_tree(expr: Expr) -> None:
    text = to_source(expr)
    assert parse(text) == expr
    assert to_source(parse(text)) == text


# -- valid rules against arbitrary requests ---------------------------------------------------

_header_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_string_fields = st.one_of(
    st.sampled_from(["http.method", "http.host", "http.path", "net.protocol", "tls.sni"]),
    st.integers(0, 5).map(lambda n: f"http.path.segments.{n}"),
    st.tuples(st.integers(0, 3), st.integers(1, 3)).map(
        lambda r: f"http.path.segments.{r[0]}_{r[0] + r[1]}"
    ),
    _header_names.map(lambda n: f"http.headers.{n}"),
    _header_names.map(lambda n: f"http.queries.{n}"),
    _header_names.map(lambda n: f"http.response.headers.{n}"),
)
_int_fields = st.sampled_from(
    [
        "http.path.segments.len",
        "net.src.port",
        "net.dst.port",
        "http.response.status",
        "latency.total_ms",
        "latency.upstream_ms",
        "latency.gateway_ms",
    ]
)
_regexes = st.sampled_from(
    [r"^/api", r"(?i)bot", r"\d+$", "a|b", "[^/]+", r"\bx\b", "", ".*", "(?m)^x$"]
)
_plain = st.text(alphabet=st.characters(blacklist_characters='"\\'), max_size=8)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_string_predicates = st.one_of(
    st.tuples(
        st.sampled_from(["", "lower", "any", "lower(any"]),
        _string_fields,
        st.sampled_from(["==", "!=", "^=", "=^", "contains"]),
        _plain.map(str.lower),
    ).map(lambda t: _wrap(t[0], t[1]) + f" {t[2]} {_quoted(t[3])}"),
    st.tuples(_string_fields, _regexes).map(lambda t: f'{t[0]} ~ r#"{t[1]}"#'),
)
_int_predicates = st.tuples(
    _int_fields,
    st.sampled_from(["==", "!=", ">", ">=", "<", "<="]),
    st.integers(-(2**63) + 1, 2**63 - 1),
).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
_ip_predicates = st.one_of(
    st.tuples(
        st.sampled_from(["net.src.ip", "net.dst.ip"]),
        st.sampled_from(["==", "!="]),
        st.ip_addresses(),
    ).map(lambda t: f"{t[0]} {t[1]} {t[2].exploded}"),
    st.tuples(
        st.sampled_from(["net.src.ip", "net.dst.ip"]),
        st.sampled_from(["in", "not in"]),
        st.ip_addresses(),
        st.integers(0, 128),
    ).map(lambda t: f"{t[0]} {t[1]} {_network(t[2], t[3]).value.exploded}"),
)


def _wrap(transform: str, field: str) -> str:
    if transform == "lower(any":
        return f"lower(any({field}))"
    return f"{transform}({field})" if transform else field


_rule_predicates = st.one_of(_string_predicates, _int_predicates, _ip_predicates)
_rules = st.recursive(
    _rule_predicates,
    lambda inner: st.one_of(
        inner.map(lambda r: f"!({r})"),
        st.lists(inner, min_size=2, max_size=4).map(lambda rs: " && ".join(f"({r})" for r in rs)),
        st.lists(inner, min_size=2, max_size=4).map(lambda rs: " || ".join(f"({r})" for r in rs)),
    ),
    max_leaves=6,
)

_addresses = st.one_of(st.ip_addresses().map(str), st.text(max_size=12))
_endpoints = st.none() | st.tuples(_addresses, st.integers(-(2**31), 2**31))
_raw_headers = st.lists(
    st.tuples(
        st.one_of(_header_names.map(str.encode), st.binary(max_size=8)), st.binary(max_size=12)
    ),
    max_size=6,
)
_numbers = st.none() | st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def _facts(draw: st.DrawFn) -> RequestFacts:
    facts = RequestFacts(
        method=draw(st.text(max_size=8)),
        host=draw(st.none() | st.text(max_size=16)),
        path=draw(st.text(max_size=24)),
        query_string=draw(st.binary(max_size=24)),
        headers=draw(_raw_headers),
        scheme=draw(st.sampled_from(["http", "https"]) | st.text(max_size=5)),
        sni=draw(st.none() | st.text(max_size=8)),
        client=draw(_endpoints),
        server=draw(_endpoints),
    )
    if draw(st.booleans()):
        facts.set_response(
            draw(st.integers(0, 999)),
            draw(_raw_headers),
            draw(st.floats(allow_nan=True)),
            draw(_numbers),
            draw(_numbers),
        )
    return facts


@SETTINGS
@given(_rules, _facts())
def test_evaluation_never_raises(source: str, facts: RequestFacts) -> None:
    rule = compile_rule(source)
    # The closure tree itself, not just matches() (which would hide an exception).
    result = rule._test(facts)
    assert isinstance(result, bool)
    assert rule.matches(facts) is result


# -- arbitrary input never crashes the parser -------------------------------------------------

_fragments = st.sampled_from(
    [
        "http.method", "http.headers.x", "net.src.ip", "latency.total_ms", "foo", "lower", "any",
        "(", ")", "!", "!(", "&&", "||", "&", "|", "==", "!=", "=", "~", "^=", "=^", ">", ">=",
        "<", "<=", "in", "not", "not in", "contains", '"x"', '"', 'r#"', '"#', 'r#"a"#', "\\",
        "1", "-1", "0x1f", "017", "08", "10.0.0.1", "10.0.0.0/8", "10.0.0.1/8", "::1", "fd00::/8",
        ":", "/", ".", "-", "@", "é", "\n", " ",
    ]
)  # fmt: skip
_token_soup = st.lists(_fragments, max_size=12).map(" ".join)
_glued_soup = st.lists(_fragments, max_size=12).map("".join)


def _assert_clean(source: str) -> None:
    result = validate_rule(source)
    for error in result.errors:
        assert 0 <= error.start <= error.end <= len(source)
        assert error.message
    if result.valid:
        compile_rule(source)
        return
    with pytest.raises(RuleError) as caught:
        compile_rule(source)
    assert caught.value.errors == result.errors


@SETTINGS
@given(st.one_of(st.text(max_size=40), _token_soup, _glued_soup))
def test_any_text_gives_a_rule_or_a_clean_error(source: str) -> None:
    _assert_clean(source)


@SETTINGS
@given(st.binary(max_size=40))
def test_any_bytes_give_a_rule_or_a_clean_error(data: bytes) -> None:
    _assert_clean(data.decode("utf-8", "surrogateescape"))
