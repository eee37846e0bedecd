"""Compiler: a checked syntax tree to a tree of closures over RequestFacts.

Everything that can be decided once is decided here: the field accessor, the comparison (bound
to its constant with C-level callables where Python has one), the regex, the CIDR mask, and the
evaluation mode (single value, all values, any value, lower-cased or not). A closure evaluates
without parsing or raising on well-formed facts; ``SamplingRule.matches`` guards the rest.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from dataplane.expr import schema
from dataplane.expr.ast import (
    And,
    CidrLiteral,
    Expr,
    IntLiteral,
    IpLiteral,
    Not,
    Operator,
    Predicate,
    StringLiteral,
    base_field,
    transforms,
)
from dataplane.expr.facts import RequestFacts
from dataplane.expr.regex import compile_regex
from dataplane.expr.schema import ResolvedField, resolve_field

__all__ = ["Test", "compile_expr"]

Test = Callable[[RequestFacts], bool]
Getter = Callable[[RequestFacts], Any]
ValueTest = Callable[[Any], bool]

# Fields that are plain attributes of RequestFacts (attrgetter is C-level, so cheap).
_ATTRIBUTES: Final = {
    schema.METHOD: "method",
    schema.HOST: "host",
    schema.PATH: "path",
    schema.PROTOCOL: "scheme",
    schema.SNI: "sni",
    schema.STATUS: "status",
    schema.TOTAL_MS: "total_ms",
    schema.UPSTREAM_MS: "upstream_ms",
    schema.GATEWAY_MS: "gateway_ms",
}
_METHODS: Final[dict[schema.FieldInfo, Getter]] = {
    schema.SRC_IP: RequestFacts.src_ip,
    schema.DST_IP: RequestFacts.dst_ip,
    schema.SRC_PORT: RequestFacts.src_port,
    schema.DST_PORT: RequestFacts.dst_port,
}


def compile_expr(expr: Expr) -> Test:
    """The closure tree for a checked expression."""
    if isinstance(expr, Predicate):
        return _predicate(expr)
    if isinstance(expr, Not):
        inner = compile_expr(expr.operand)
        return lambda facts: not inner(facts)
    parts = tuple(compile_expr(operand) for operand in expr.operands)
    return _all(parts) if isinstance(expr, And) else _any(parts)


def _all(parts: tuple[Test, ...]) -> Test:
    # Unrolled for the usual sizes: a loop costs more per operand than a chained 'and'.
    if len(parts) == 2:
        a, b = parts
        return lambda f: a(f) and b(f)
    if len(parts) == 3:
        a, b, c = parts
        return lambda f: a(f) and b(f) and c(f)
    if len(parts) == 4:
        a, b, c, d = parts
        return lambda f: a(f) and b(f) and c(f) and d(f)
    if len(parts) == 5:
        a, b, c, d, e = parts
        return lambda f: a(f) and b(f) and c(f) and d(f) and e(f)

    def every(facts: RequestFacts) -> bool:
        for part in parts:  # noqa: SIM110  (all() over a generator is slower)
            if not part(facts):
                return False
        return True

    return every


def _any(parts: tuple[Test, ...]) -> Test:
    if len(parts) == 2:
        a, b = parts
        return lambda f: a(f) or b(f)
    if len(parts) == 3:
        a, b, c = parts
        return lambda f: a(f) or b(f) or c(f)

    def some(facts: RequestFacts) -> bool:
        for part in parts:  # noqa: SIM110  (any() over a generator is slower)
            if part(facts):
                return True
        return False

    return some


def _predicate(predicate: Predicate) -> Test:
    resolved = resolve_field(base_field(predicate.lhs).name)
    funcs = {t.func for t in transforms(predicate.lhs)}
    info = resolved.info
    get = _getter(resolved)
    # http.host is lower-cased already, so lower() costs nothing there.
    lower = "lower" in funcs and info is not schema.HOST
    if info.type is schema.FieldType.IP:
        return _ip_predicate(get, predicate)
    if info.multi_valued:
        test = _value_test(predicate)
        if "any" in funcs:
            return _some_value(get, test, lower=lower)
        return _every_value(get, test, lower=lower)
    if lower:
        get = _lowered(get)
    if predicate.op is Operator.REGEX:
        return _single(get, _value_test(predicate))
    return _SINGLE[predicate.op](get, _constant(predicate))


def _getter(resolved: ResolvedField) -> Getter:
    info, param = resolved.info, resolved.param
    attribute = _ATTRIBUTES.get(info)
    if attribute is not None:
        return operator.attrgetter(attribute)
    method = _METHODS.get(info)
    if method is not None:
        return method
    if info is schema.HEADER:
        assert isinstance(param, str)
        return operator.methodcaller("header", param.encode("ascii"))
    if info is schema.RESPONSE_HEADER:
        assert isinstance(param, str)
        return operator.methodcaller("response_header", param.encode("ascii"))
    if info is schema.QUERY:
        assert isinstance(param, str)
        return operator.methodcaller("query", param)
    if info is schema.SEGMENT_COUNT:
        return lambda facts: len(facts.segments())
    if info is schema.SEGMENT:
        assert isinstance(param, int)
        return partial(_segment, param)
    assert info is schema.SEGMENT_RANGE
    assert isinstance(param, tuple)
    return partial(_segment_range, param[0], param[1])


def _segment(index: int, facts: RequestFacts) -> str | None:
    segments = facts.segments()
    return segments[index] if index < len(segments) else None


def _segment_range(first: int, last: int, facts: RequestFacts) -> str | None:
    segments = facts.segments()
    return "/".join(segments[first : last + 1]) if last < len(segments) else None


def _lowered(get: Getter) -> Getter:
    def lowered(facts: RequestFacts) -> str | None:
        value = get(facts)
        return value.lower() if value is not None else None

    return lowered


def _constant(predicate: Predicate) -> Any:
    rhs = predicate.rhs
    assert isinstance(rhs, StringLiteral | IntLiteral)
    return rhs.value


# -- single-valued fields: one closure per operator, the comparison written inline ------------
# (a closure calling a separate comparison callable costs a call per predicate on the hot path)


def _eq(get: Getter, constant: Any) -> Test:
    # An absent field is None, which equals no constant.
    return lambda facts: get(facts) == constant


def _ne(get: Getter, constant: Any) -> Test:
    def not_equal(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value != constant

    return not_equal


def _prefix(get: Getter, constant: Any) -> Test:
    def prefix(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value.startswith(constant)

    return prefix


def _postfix(get: Getter, constant: Any) -> Test:
    def postfix(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value.endswith(constant)

    return postfix


def _contains(get: Getter, constant: Any) -> Test:
    def contains(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and constant in value

    return contains


def _gt(get: Getter, constant: Any) -> Test:
    def greater(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value > constant

    return greater


def _ge(get: Getter, constant: Any) -> Test:
    def greater_or_equal(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value >= constant

    return greater_or_equal


def _lt(get: Getter, constant: Any) -> Test:
    def less(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value < constant

    return less


def _le(get: Getter, constant: Any) -> Test:
    def less_or_equal(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value <= constant

    return less_or_equal


_SINGLE: Final[dict[Operator, Callable[[Getter, Any], Test]]] = {
    Operator.EQ: _eq,
    Operator.NE: _ne,
    Operator.PREFIX: _prefix,
    Operator.POSTFIX: _postfix,
    Operator.CONTAINS: _contains,
    Operator.GT: _gt,
    Operator.GE: _ge,
    Operator.LT: _lt,
    Operator.LE: _le,
}


def _single(get: Getter, test: ValueTest) -> Test:
    def single(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and test(value)

    return single


def _ip_predicate(get: Getter, predicate: Predicate) -> Test:
    rhs = predicate.rhs
    if isinstance(rhs, IpLiteral):
        key = (rhs.value.version, int(rhs.value))
        return (_eq if predicate.op is Operator.EQ else _ne)(get, key)
    assert isinstance(rhs, CidrLiteral)
    version = rhs.value.version
    mask = int(rhs.value.netmask)
    network = int(rhs.value.network_address)
    if predicate.op is Operator.IN:

        def inside(facts: RequestFacts) -> bool:
            key = get(facts)
            return key is not None and key[0] == version and key[1] & mask == network

        return inside

    # Like Kong's ATC: an address of the other family is "not in" the CIDR.
    def outside(facts: RequestFacts) -> bool:
        key = get(facts)
        return key is not None and (key[0] != version or key[1] & mask != network)

    return outside


# -- multi-valued fields (headers, query arguments): every value, or any(...) -----------------


def _value_test(predicate: Predicate) -> ValueTest:
    """A test of one value against the constant (C-level callables where Python has them)."""
    op = predicate.op
    if op is Operator.REGEX:
        assert isinstance(predicate.rhs, StringLiteral)
        search = compile_regex(predicate.rhs.value).search
        return lambda value: search(value) is not None
    constant = _constant(predicate)
    if op is Operator.EQ:
        return partial(operator.eq, constant)
    if op is Operator.NE:
        return partial(operator.ne, constant)
    if op is Operator.PREFIX:
        return operator.methodcaller("startswith", constant)
    if op is Operator.POSTFIX:
        return operator.methodcaller("endswith", constant)
    assert op is Operator.CONTAINS
    return operator.methodcaller("__contains__", constant)


def _every_value(get: Getter, test: ValueTest, *, lower: bool) -> Test:
    """Kong's default for multi-valued fields: present, and every value passes."""

    def every(facts: RequestFacts) -> bool:
        values = get(facts)
        if not values:
            return False
        for value in values:  # noqa: SIM110  (all() over a generator is slower)
            if not test(value.lower() if lower else value):
                return False
        return True

    return every


def _some_value(get: Getter, test: ValueTest, *, lower: bool) -> Test:
    """``any(field)``: at least one value passes."""

    def some(facts: RequestFacts) -> bool:
        values = get(facts)
        if not values:
            return False
        for value in values:  # noqa: SIM110  (any() over a generator is slower)
            if test(value.lower() if lower else value):
                return True
        return False

    return some
