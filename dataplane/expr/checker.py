"""Type checker: a syntax tree against the field schema, collecting every error with its position.

It resolves each field, checks transforms, operators and literal types, and validates regexes, so
that the compiler never meets a rule it cannot run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from dataplane.expr.ast import (
    CidrLiteral,
    Expr,
    IntLiteral,
    IpLiteral,
    Literal,
    Operator,
    Predicate,
    StringLiteral,
    base_field,
    predicates,
    transforms,
)
from dataplane.expr.errors import RuleErrorDetail
from dataplane.expr.regex import RegexError, compile_regex
from dataplane.expr.schema import (
    OPERATORS_BY_TYPE,
    FieldError,
    FieldType,
    Phase,
    ResolvedField,
    resolve_field,
)

__all__ = ["CheckResult", "check"]

_ASCII_UPPER: Final = re.compile(r"[A-Z]")
_LITERAL_NAMES: Final = {
    StringLiteral: "a string",
    IntLiteral: "an integer",
    IpLiteral: "an IP address",
    CidrLiteral: "a CIDR",
}
_LITERAL_OF: Final[dict[FieldType, type[Literal]]] = {
    FieldType.STRING: StringLiteral,
    FieldType.INT: IntLiteral,
    FieldType.IP: IpLiteral,
}
_EXPECTED_LITERAL: Final = {
    FieldType.STRING: 'a string such as "abc"',
    FieldType.INT: "an integer such as 200",
    FieldType.IP: "an IP address such as 10.0.0.1",
}


@dataclass
class CheckResult:
    """What checking found: errors (empty when the rule is valid), known fields, tail or not."""

    errors: list[RuleErrorDetail] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    tail: bool = False


def check(expr: Expr) -> CheckResult:
    """Type-check ``expr``; the result lists every problem, in source order."""
    result = CheckResult()
    for predicate in predicates(expr):
        _check_predicate(predicate, result)
    result.errors.sort(key=lambda e: (e.start, e.end))
    return result


def _check_predicate(predicate: Predicate, result: CheckResult) -> None:
    name = base_field(predicate.lhs)
    try:
        resolved = resolve_field(name.name)
    except FieldError as exc:
        result.errors.append(RuleErrorDetail(str(exc), name.start, name.end))
        return
    result.fields.add(name.name)
    if resolved.info.phase is Phase.RESPONSE:
        result.tail = True
    error = _type_error(predicate, resolved)
    if error is not None:
        result.errors.append(error)
        return
    if predicate.op is Operator.REGEX:
        assert isinstance(predicate.rhs, StringLiteral)
        try:
            compile_regex(predicate.rhs.value)
        except RegexError as exc:
            result.errors.append(_regex_error(exc, predicate.rhs))


def _type_error(predicate: Predicate, resolved: ResolvedField) -> RuleErrorDetail | None:
    ftype = resolved.info.type
    lowered = False
    for transform in transforms(predicate.lhs):
        if transform.func == "lower":
            if ftype is not FieldType.STRING:
                return RuleErrorDetail(
                    f"lower() applies only to string fields; '{resolved.name}' is {_a(ftype)}",
                    transform.start,
                    transform.end,
                )
            lowered = True
    op, rhs = predicate.op, predicate.rhs
    if op not in OPERATORS_BY_TYPE[ftype]:
        allowed = ", ".join(OPERATORS_BY_TYPE[ftype])
        return RuleErrorDetail(
            f"operator '{op}' does not apply to {_a(ftype)} field '{resolved.name}'; "
            f"use one of {allowed}",
            predicate.op_start,
            predicate.op_end,
        )
    message = _literal_error(op, rhs, ftype, resolved.name)
    if message is None and lowered and op is not Operator.REGEX:
        message = _lowered_constant_error(rhs)
    if message is not None:
        return RuleErrorDetail(message, rhs.start, rhs.end)
    return None


def _literal_error(op: Operator, rhs: Literal, ftype: FieldType, name: str) -> str | None:
    found = _LITERAL_NAMES[type(rhs)]
    if op is Operator.REGEX:
        if isinstance(rhs, StringLiteral):
            return None
        return f"the regex after '~' must be a string, not {found}"
    if ftype is FieldType.IP and op in (Operator.IN, Operator.NOT_IN):
        if isinstance(rhs, CidrLiteral):
            return None
        if isinstance(rhs, IpLiteral):
            return f"'{op}' takes a CIDR such as {rhs.value}/{rhs.value.max_prefixlen}"
        return f"'{op}' takes a CIDR such as 10.0.0.0/8, not {found}"
    if ftype is FieldType.IP and isinstance(rhs, CidrLiteral):
        return f"use 'in' or 'not in' to compare '{name}' with a CIDR"
    if isinstance(rhs, _LITERAL_OF[ftype]):
        return None
    expected = _EXPECTED_LITERAL[ftype]
    return f"'{name}' is {_a(ftype)} field, so the value must be {expected}, not {found}"


def _lowered_constant_error(rhs: Literal) -> str | None:
    # lower() never yields an ASCII capital, so such a constant can never match (or, with
    # '!=', always does): a mistake worth reporting rather than a rule that silently misbehaves.
    if isinstance(rhs, StringLiteral) and _ASCII_UPPER.search(rhs.value):
        return (
            f'lower() values have no capital letters, so compare with "{rhs.value.lower()}" instead'
        )
    return None


def _regex_error(exc: RegexError, rhs: StringLiteral) -> RuleErrorDetail:
    # In a raw string every pattern character is one source character, so the error can point
    # inside the literal; a regular string's escapes break that mapping.
    if rhs.raw and exc.offset is not None:
        start = min(rhs.start + 3 + exc.offset, rhs.end - 2)
        end = max(start + 1, min(start + exc.length, rhs.end - 2))
        return RuleErrorDetail(exc.message, start, end)
    return RuleErrorDetail(exc.message, rhs.start, rhs.end)


def _a(ftype: FieldType) -> str:
    return {"string": "a string", "int": "an int", "ip": "an IP"}[ftype.value]
