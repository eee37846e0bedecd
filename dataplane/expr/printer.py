"""Printer: a syntax tree back to rule text, such that ``parse(to_source(tree)) == tree``.

Output is canonical: one space around operators, parentheses only where the tree needs them,
integers in decimal, addresses in compressed form, strings raw only when they were raw and can be.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Final

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
    Or,
    Predicate,
    StringLiteral,
)

__all__ = ["to_source"]

_ESCAPES: Final = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def to_source(expr: Expr) -> str:
    """Rule text for ``expr``."""
    if isinstance(expr, Predicate):
        return f"{_lhs(expr.lhs)} {expr.op} {_literal(expr.rhs)}"
    if isinstance(expr, Not):
        return f"!({to_source(expr.operand)})"
    joiner = " && " if isinstance(expr, And) else " || "
    return joiner.join(_operand(operand) for operand in expr.operands)


def _operand(expr: Expr) -> str:
    # A nested && or || chain keeps its own level only inside parentheses.
    text = to_source(expr)
    return f"({text})" if isinstance(expr, And | Or) else text


def _lhs(lhs: Lhs) -> str:
    if isinstance(lhs, Field):
        return lhs.name
    return f"{lhs.func}({_lhs(lhs.arg)})"


def _literal(literal: Literal) -> str:
    if isinstance(literal, StringLiteral):
        if literal.raw and '"#' not in literal.value:
            return f'r#"{literal.value}"#'
        return f'"{literal.value.translate(_ESCAPES)}"'
    if isinstance(literal, IntLiteral):
        return str(literal.value)
    if isinstance(literal, IpLiteral):
        return _address(literal.value)
    assert isinstance(literal, CidrLiteral)
    return f"{_address(literal.value.network_address)}/{literal.value.prefixlen}"


def _address(address: IPv4Address | IPv6Address) -> str:
    text = address.compressed
    if "." in text and address.version == 6:
        # Newer Pythons show IPv4-mapped addresses dotted, which the grammar does not accept.
        packed = address.packed
        return ":".join(f"{int.from_bytes(packed[i : i + 2], 'big'):x}" for i in range(0, 16, 2))
    return text
