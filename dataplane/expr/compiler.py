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
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
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
    schema.PATH: "path",
    schema.PROTOCOL: "scheme",
    schema.SNI: "sni",
    schema.STATUS: "status",
    schema.TOTAL_MS: "total_ms",
    schema.UPSTREAM_MS: "upstream_ms",
    schema.GATEWAY_MS: "gateway_ms",
}
_METHODS: Final[dict[schema.FieldInfo, Getter]] = {
    schema.HOST: RequestFacts.host,
    schema.SRC_IP: RequestFacts.src_ip,
    schema.DST_IP: RequestFacts.dst_ip,
    schema.SRC_PORT: RequestFacts.src_port,
    schema.DST_PORT: RequestFacts.dst_port,
}
# v > c is c < v: the constant goes first so that partial() can bind it.
_ORDERINGS: Final = {
    Operator.GT: operator.lt,
    Operator.GE: operator.le,
    Operator.LT: operator.gt,
    Operator.LE: operator.ge,
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
    get = _getter(resolved)
    lower = "lower" in funcs
    if resolved.info.type is schema.FieldType.IP:
        return _single(get, _ip_test(predicate), lower=False)
    if not resolved.info.multi_valued:
        fast = _fast_single(get, predicate, lower)
        return fast if fast is not None else _single(get, _value_test(predicate), lower=lower)
    test = _value_test(predicate)
    if "any" in funcs:
        return _some_value(get, test, lower=lower)
    return _every_value(get, test, lower=lower)


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


def _fast_single(get: Getter, predicate: Predicate, lower: bool) -> Test | None:
    """One closure for the commonest shapes: ``field == c`` and ``field != c``."""
    if lower or predicate.op not in (Operator.EQ, Operator.NE):
        return None
    constant = _constant(predicate)
    if predicate.op is Operator.EQ:
        # An absent field is None, which equals no constant.
        return lambda facts: get(facts) == constant

    def not_equal(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and value != constant

    return not_equal


def _constant(predicate: Predicate) -> str | int:
    rhs = predicate.rhs
    assert isinstance(rhs, StringLiteral | IntLiteral)
    return rhs.value


def _value_test(predicate: Predicate) -> ValueTest:
    """A test of one (already lower-cased if need be) value against the constant."""
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
    if op is Operator.CONTAINS:
        return operator.methodcaller("__contains__", constant)
    return partial(_ORDERINGS[op], constant)


def _ip_test(predicate: Predicate) -> ValueTest:
    rhs = predicate.rhs
    if isinstance(rhs, IpLiteral):
        key = _ip_key(rhs.value)
        return partial(operator.eq if predicate.op is Operator.EQ else operator.ne, key)
    assert isinstance(rhs, CidrLiteral)
    version, mask, network = _cidr_key(rhs.value)
    if predicate.op is Operator.IN:
        return lambda key: key[0] == version and key[1] & mask == network
    # Like Kong: an address of the other family is "not in" the CIDR.
    return lambda key: key[0] != version or key[1] & mask != network


def _ip_key(address: IPv4Address | IPv6Address) -> tuple[int, int]:
    return address.version, int(address)


def _cidr_key(network: IPv4Network | IPv6Network) -> tuple[int, int, int]:
    return network.version, int(network.netmask), int(network.network_address)


def _single(get: Getter, test: ValueTest, *, lower: bool) -> Test:
    if lower:

        def lowered(facts: RequestFacts) -> bool:
            value = get(facts)
            return value is not None and test(value.lower())

        return lowered

    def single(facts: RequestFacts) -> bool:
        value = get(facts)
        return value is not None and test(value)

    return single


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
