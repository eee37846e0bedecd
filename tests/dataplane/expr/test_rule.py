"""The public API: compile_rule, validate_rule, SamplingRule, RuleError, known_fields."""

from __future__ import annotations

import pytest

import dataplane.expr
from dataplane.expr import (
    RuleError,
    RuleErrorDetail,
    SamplingRule,
    ValidationResult,
    compile_rule,
    validate_rule,
)
from tests.dataplane.expr.conftest import FactsFactory


def test_public_names() -> None:
    assert set(dataplane.expr.__all__) >= {
        "RequestFacts",
        "RuleError",
        "RuleErrorDetail",
        "SamplingRule",
        "ValidationResult",
        "compile_rule",
        "known_fields",
        "validate_rule",
    }


def test_compiled_rule_says_what_it_reads_and_when(make_facts: FactsFactory) -> None:
    source = 'http.method == "GET" && any(http.headers.x_debug) == "1"'
    rule = compile_rule(source)
    assert isinstance(rule, SamplingRule)
    assert rule.source == source
    assert rule.fields == frozenset({"http.method", "http.headers.x_debug"})
    assert rule.tail is False
    assert rule.matches(make_facts())
    assert compile_rule("latency.total_ms > 1").tail is True
    assert "tail=True" in repr(compile_rule("latency.total_ms > 1"))


def test_matches_never_raises(make_facts: FactsFactory) -> None:
    rule = compile_rule('http.path.segments.0 == "api"')
    broken = make_facts(path=None)
    assert rule.matches(broken) is False


def test_validate_a_valid_rule() -> None:
    result = validate_rule("latency.total_ms > 250 || http.response.status >= 500")
    assert result == ValidationResult(
        valid=True,
        errors=[],
        fields=["http.response.status", "latency.total_ms"],
        tail=True,
    )


def test_validate_a_rule_with_type_errors_keeps_what_it_knows() -> None:
    result = validate_rule('http.response.status == "500" && http.metod == "GET"')
    assert not result.valid
    assert [e.start for e in result.errors] == [24, 33]
    assert result.fields == ["http.response.status"]
    assert result.tail


def test_validate_a_rule_with_a_syntax_error() -> None:
    result = validate_rule('http.method == "GET" &&')
    assert result == ValidationResult(
        valid=False,
        errors=[
            RuleErrorDetail("the rule ends where a predicate or '(' is expected", 23, 23),
        ],
    )


def test_rule_error_is_a_value_error_naming_the_first_problem() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'http.method'\? at 0\.\.10") as caught:
        compile_rule('http.metod == "GET" && net.src.port == "80"')
    assert isinstance(caught.value, RuleError)
    assert len(caught.value.errors) == 2
    assert str(caught.value).endswith("(and 1 more)")
