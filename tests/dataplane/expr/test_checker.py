"""Checker: every problem of a rule at once, fields read, tail or not."""

from __future__ import annotations

from dataplane.expr.checker import check
from dataplane.expr.parser import parse


def test_a_valid_rule_has_no_errors_and_lists_its_fields() -> None:
    result = check(parse('http.method == "GET" && any(http.headers.x_debug) == "1"'))
    assert result.errors == []
    assert result.fields == {"http.method", "http.headers.x_debug"}
    assert not result.tail


def test_response_fields_make_a_rule_tail() -> None:
    assert check(parse("http.response.status >= 500")).tail
    assert check(parse('http.method == "GET" || latency.total_ms > 5')).tail
    assert check(parse('!(http.response.headers.x_cache == "HIT")')).tail
    assert not check(parse("net.src.port > 1")).tail


def test_every_error_is_reported_in_source_order() -> None:
    source = 'http.metod == "GET" && net.src.port == "80" && http.pth == "/" && http.path ~ "("'
    result = check(parse(source))
    assert [(e.start, e.end) for e in result.errors] == [(0, 10), (39, 43), (47, 55), (78, 81)]
    assert "did you mean 'http.method'?" in result.errors[0].message
    assert "must be an integer" in result.errors[1].message
    assert "did you mean 'http.path'?" in result.errors[2].message
    assert "invalid regex" in result.errors[3].message
    # Fields that resolved are still reported (the viewer shows them while the rule is edited).
    assert result.fields == {"net.src.port", "http.path"}


def test_one_error_per_predicate() -> None:
    result = check(parse("lower(net.src.port) ~ 1"))
    assert len(result.errors) == 1
    assert "lower() applies only to string fields" in result.errors[0].message


def test_any_is_accepted_on_single_valued_fields() -> None:
    assert check(parse('any(http.method) == "GET"')).errors == []
    assert check(parse("any(net.src.port) > 1")).errors == []


def test_lower_with_a_capital_in_the_constant_is_an_error_except_for_regexes() -> None:
    (error,) = check(parse('lower(http.path) != "/API"')).errors
    assert 'compare with "/api" instead' in error.message
    assert check(parse('lower(http.path) ~ "[A-Z]"')).errors == []
    assert check(parse('lower(http.path) == "/Äpi"')).errors == []


def test_regex_errors_point_inside_raw_strings_only() -> None:
    (raw,) = check(parse('http.path ~ r#"ab(?=c)"#')).errors
    assert (raw.start, raw.end) == (17, 20)
    (plain,) = check(parse('http.path ~ "ab(?=c)"')).errors
    assert (plain.start, plain.end) == (12, 21)
    (unknown_position,) = check(parse('http.path ~ r#"[[:alpha:]]"#')).errors
    assert unknown_position.start == 16
