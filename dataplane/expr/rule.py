"""Compiled sampling rules and the two entry points: ``compile_rule`` and ``validate_rule``."""

from __future__ import annotations

from dataclasses import dataclass, field

from dataplane.expr.ast import Expr
from dataplane.expr.checker import check
from dataplane.expr.compiler import Test, compile_expr
from dataplane.expr.errors import RuleError, RuleErrorDetail
from dataplane.expr.facts import RequestFacts
from dataplane.expr.parser import parse

__all__ = ["SamplingRule", "ValidationResult", "compile_rule", "validate_rule"]


class SamplingRule:
    """A compiled rule: which fields it reads, whether it waits for the response, and a test."""

    __slots__ = ("_test", "expr", "fields", "source", "tail")

    def __init__(
        self, source: str, expr: Expr, fields: frozenset[str], tail: bool, test: Test
    ) -> None:
        self.source = source
        self.expr = expr
        self.fields = fields
        self.tail = tail
        self._test = test

    def matches(self, facts: RequestFacts) -> bool:
        """Whether the request (and response, for tail rules) is sampled; never raises."""
        try:
            return self._test(facts)
        except Exception:
            # Facts built from odd input must cost a sample, never the request.
            return False

    def __repr__(self) -> str:
        return f"SamplingRule({self.source!r}, tail={self.tail})"


@dataclass
class ValidationResult:
    """What ``POST /api/v1/expressions/validate`` reports about a rule."""

    valid: bool
    errors: list[RuleErrorDetail] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    tail: bool = False


def compile_rule(source: str) -> SamplingRule:
    """Parse, type-check and compile a rule; raise RuleError listing every problem found."""
    expr = parse(source)
    result = check(expr)
    if result.errors:
        raise RuleError(result.errors)
    return SamplingRule(source, expr, frozenset(result.fields), result.tail, compile_expr(expr))


def validate_rule(source: str) -> ValidationResult:
    """Check a rule without raising: errors with positions, the fields it reads, tail or not."""
    try:
        expr = parse(source)
    except RuleError as exc:
        return ValidationResult(valid=False, errors=exc.errors)
    result = check(expr)
    return ValidationResult(
        valid=not result.errors,
        errors=result.errors,
        fields=sorted(result.fields),
        tail=result.tail,
    )
