"""Parser: tree shapes, positions, one operator kind per level, and syntax errors."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from dataplane.expr.ast import (
    And,
    CidrLiteral,
    Field,
    IntLiteral,
    Not,
    Operator,
    Or,
    Predicate,
    StringLiteral,
    Transform,
)
from dataplane.expr.errors import RuleError
from dataplane.expr.parser import MAX_DEPTH, parse

A = Predicate(Field("a"), Operator.EQ, IntLiteral(1))
B = Predicate(Field("b"), Operator.EQ, IntLiteral(2))
C = Predicate(Field("c"), Operator.EQ, IntLiteral(3))


def _error(source: str) -> tuple[str, int, int]:
    with pytest.raises(RuleError) as caught:
        parse(source)
    (error,) = caught.value.errors
    return error.message, error.start, error.end


def test_a_predicate() -> None:
    tree = parse('http.method == "GET"')
    assert tree == Predicate(Field("http.method"), Operator.EQ, StringLiteral("GET"))
    assert isinstance(tree, Predicate)
    assert (tree.start, tree.end, tree.op_start, tree.op_end) == (0, 20, 12, 14)
    assert isinstance(tree.lhs, Field)
    assert (tree.lhs.start, tree.lhs.end) == (0, 11)
    assert (tree.rhs.start, tree.rhs.end) == (15, 20)


@pytest.mark.parametrize("op", list(Operator))
def test_every_operator(op: Operator) -> None:
    tree = parse(f"x {op.value} 1")
    assert isinstance(tree, Predicate)
    assert tree.op is op


def test_not_in_may_span_whitespace_and_its_range_covers_both_words() -> None:
    tree = parse("net.src.ip not \n in 10.0.0.0/8")
    assert tree == Predicate(
        Field("net.src.ip"), Operator.NOT_IN, CidrLiteral(ip_network("10.0.0.0/8"))
    )
    assert isinstance(tree, Predicate)
    assert (tree.op_start, tree.op_end) == (11, 19)


def test_chains_of_one_operator_are_flat() -> None:
    assert parse("a == 1 && b == 2 && c == 3") == And((A, B, C))
    assert parse("a == 1 || b == 2 || c == 3") == Or((A, B, C))


def test_parentheses_keep_their_level() -> None:
    assert parse("a == 1 && (b == 2 && c == 3)") == And((A, And((B, C))))
    assert parse("(a == 1 || b == 2) && c == 3") == And((Or((A, B)), C))
    assert parse("((a == 1))") == A


def test_not_applies_to_a_parenthesised_expression() -> None:
    tree = parse("!(a == 1 || b == 2) && !(c == 3)")
    assert tree == And((Not(Or((A, B))), Not(C)))
    assert isinstance(tree, And)
    first = tree.operands[0]
    assert (first.start, first.end) == (0, 19)
    assert parse("!(!(a == 1))") == Not(Not(A))


def test_transforms_nest() -> None:
    tree = parse('lower(any(http.headers.x)) == "a"')
    assert isinstance(tree, Predicate)
    assert tree.lhs == Transform("lower", Transform("any", Field("http.headers.x")))
    assert isinstance(tree.lhs, Transform)
    assert (tree.lhs.start, tree.lhs.end) == (0, 26)


def test_mixing_and_and_or_shows_both_readings() -> None:
    message, start, end = _error("a == 1 && b == 2 || c == 3")
    assert (start, end) == (17, 19)
    assert "'(a == 1 && b == 2) || c == 3' or 'a == 1 && (b == 2 || c == 3)'" in message
    assert "Kong reads it as the latter" in message


def test_mixing_after_a_longer_run_groups_the_whole_run() -> None:
    message, start, _ = _error("a == 1 || b == 2 || c == 3 && (d == 4)")
    assert start == 27
    usual = "'a == 1 || b == 2 || (c == 3 && (d == 4))'"
    kong = "'(a == 1 || b == 2 || c == 3) && (d == 4)'"
    assert f"{usual} or {kong}" in message


@pytest.mark.parametrize("rest", [")", "@", '"open', ""])
def test_mixing_is_reported_even_when_what_follows_is_broken(rest: str) -> None:
    message, start, _ = _error(f"a == 1 && b == 2 || {rest}")
    assert start == 17
    assert "(b == 2 || ...)" in message


def test_mixing_inside_parentheses_is_an_error_too() -> None:
    assert _error("x == 1 && (a == 1 && b == 2 || c == 3)")[1] == 28


@pytest.mark.parametrize(
    ("source", "fragment", "start", "end"),
    [
        ("", "empty rule", 0, 0),
        ("a == 1 b == 2", "after a complete predicate", 7, 8),
        ("a == 1)", "without a matching '('", 6, 7),
        ("(a == 1", "missing ')'", 0, 1),
        ("((a == 1)", "missing ')'", 0, 1),
        ("(a == 1 b", "expected '&&', '||' or ')'", 8, 9),
        ("!a == 1", "'!' applies only to a parenthesised expression", 0, 1),
        ("a ! = 1", "for inequality write '!='", 2, 3),
        ("a == b", "found the word 'b'", 5, 6),
        ("a == (", "expected a value", 5, 6),
        ("a not 1", "expected 'in' after 'not'", 6, 7),
        ("a 1", "expected an operator", 2, 3),
        ("1 == a", "expected a field", 0, 1),
        ("a == 1 &&", "the rule ends", 9, 9),
        ("a == 1 && )", "unexpected ')'", 10, 11),
        ("f(a) == 1", "unknown function 'f'", 0, 1),
        ("lower(a == 1", "expected ')' to close lower(", 8, 10),
        ("lower(1) == 1", "expected a field", 6, 7),
    ],
)
def test_syntax_errors(source: str, fragment: str, start: int, end: int) -> None:
    message, got_start, got_end = _error(source)
    assert fragment in message
    assert (got_start, got_end) == (start, end)


def test_nesting_is_limited() -> None:
    deep = "(" * MAX_DEPTH + "a == 1" + ")" * MAX_DEPTH
    assert parse(deep) == A
    message, start, _ = _error("(" + deep + ")")
    assert "nested more than" in message
    assert start == MAX_DEPTH
    funcs = "lower(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1) + " == 1"
    assert "functions nested more than" in _error(funcs)[0]
