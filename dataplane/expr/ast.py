"""The syntax tree of a rule: plain frozen dataclasses.

Source positions (``start``/``end``, character offsets, end exclusive) ride along for error
messages but take no part in equality, so a tree printed and parsed again compares equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

__all__ = [
    "And",
    "CidrLiteral",
    "Expr",
    "Field",
    "IntLiteral",
    "IpLiteral",
    "Lhs",
    "Literal",
    "Not",
    "Operator",
    "Or",
    "Predicate",
    "StringLiteral",
    "Transform",
    "base_field",
    "predicates",
    "transforms",
]


class Operator(StrEnum):
    """Comparison operators, valued as written in rules."""

    EQ = "=="
    NE = "!="
    REGEX = "~"
    PREFIX = "^="
    POSTFIX = "=^"
    CONTAINS = "contains"
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    IN = "in"
    NOT_IN = "not in"


def _pos() -> int:
    return field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Field:
    """A field name as written, e.g. ``http.headers.x_debug``."""

    name: str
    start: int = _pos()
    end: int = _pos()


@dataclass(frozen=True, slots=True)
class Transform:
    """``lower(lhs)`` or ``any(lhs)``."""

    func: str
    arg: Lhs
    start: int = _pos()
    end: int = _pos()


Lhs = Field | Transform


@dataclass(frozen=True, slots=True)
class StringLiteral:
    """A string; ``raw`` only remembers that it was written ``r#"..."#``."""

    value: str
    raw: bool = field(default=False, compare=False, kw_only=True)
    start: int = _pos()
    end: int = _pos()


@dataclass(frozen=True, slots=True)
class IntLiteral:
    """A 64-bit signed integer."""

    value: int
    start: int = _pos()
    end: int = _pos()


@dataclass(frozen=True, slots=True)
class IpLiteral:
    """An IPv4 or IPv6 address."""

    value: IPv4Address | IPv6Address
    start: int = _pos()
    end: int = _pos()


@dataclass(frozen=True, slots=True)
class CidrLiteral:
    """An IPv4 or IPv6 network without host bits."""

    value: IPv4Network | IPv6Network
    start: int = _pos()
    end: int = _pos()


Literal = StringLiteral | IntLiteral | IpLiteral | CidrLiteral


@dataclass(frozen=True, slots=True)
class Predicate:
    """``lhs op rhs``; ``op_start``/``op_end`` locate the operator."""

    lhs: Lhs
    op: Operator
    rhs: Literal
    start: int = _pos()
    end: int = _pos()
    op_start: int = _pos()
    op_end: int = _pos()


@dataclass(frozen=True, slots=True)
class Not:
    """``!( operand )``."""

    operand: Expr
    start: int = _pos()
    end: int = _pos()


@dataclass(frozen=True, slots=True)
class And:
    """Two or more operands joined by ``&&``."""

    operands: tuple[Expr, ...]
    start: int = _pos()
    end: int = _pos()


@dataclass(frozen=True, slots=True)
class Or:
    """Two or more operands joined by ``||``."""

    operands: tuple[Expr, ...]
    start: int = _pos()
    end: int = _pos()


Expr = Predicate | Not | And | Or


def predicates(expr: Expr) -> Iterator[Predicate]:
    """Every predicate of ``expr``, left to right."""
    if isinstance(expr, Predicate):
        yield expr
    elif isinstance(expr, Not):
        yield from predicates(expr.operand)
    else:
        for operand in expr.operands:
            yield from predicates(operand)


def base_field(lhs: Lhs) -> Field:
    """The field under any transforms."""
    while isinstance(lhs, Transform):
        lhs = lhs.arg
    return lhs


def transforms(lhs: Lhs) -> Iterator[Transform]:
    """The transforms applied to a field, outermost first."""
    while isinstance(lhs, Transform):
        yield lhs
        lhs = lhs.arg
