"""Recursive-descent parser: tokens to a syntax tree, or a RuleError at the first syntax error.

Grammar (EXPRESSIONS.md, Kong ATC)::

    expression := term (("&&" | "||") term)*     one operator kind per level
    term       := predicate | "!"? "(" expression ")"
    predicate  := lhs operator literal
    lhs        := field | ("lower" | "any") "(" lhs ")"
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
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
    Operator,
    Or,
    Predicate,
    StringLiteral,
    Transform,
)
from dataplane.expr.errors import RuleError
from dataplane.expr.lexer import Token, TokenKind, iter_tokens

__all__ = ["MAX_DEPTH", "TRANSFORMS", "parse"]

MAX_DEPTH: Final = 64
TRANSFORMS: Final = ("lower", "any")
_OPERATOR_LIST: Final = "==, !=, ~, ^=, =^, contains, >, >=, <, <=, in, not in"
_WORD_OPERATORS: Final = {"contains": Operator.CONTAINS, "in": Operator.IN}


def parse(source: str) -> Expr:
    """Parse a rule into its syntax tree; raise RuleError on a syntax error."""
    return _Parser(source).rule()


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.stream = iter_tokens(source)
        self.tokens = [next(self.stream)]
        self.index = 0
        self.depth = 0

    # -- token helpers ----------------------------------------------------------------------

    @property
    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not TokenKind.EOF:
            self.index += 1
            self.tokens.append(next(self.stream))
        return token

    @property
    def last_end(self) -> int:
        """Where the most recently consumed token ends."""
        return self.tokens[self.index - 1].end if self.index else 0

    def error(self, message: str, token: Token) -> RuleError:
        return RuleError.at(message, token.start, token.end)

    @staticmethod
    def describe(token: Token) -> str:
        if token.kind is TokenKind.EOF:
            return "the end of the rule"
        return f"'{token.text}'"

    # -- grammar ----------------------------------------------------------------------------

    def rule(self) -> Expr:
        if self.peek.kind is TokenKind.EOF:
            raise RuleError.at(
                'empty rule: write a predicate such as http.method == "GET"', 0, len(self.source)
            )
        expr = self.expression()
        token = self.peek
        if token.kind is TokenKind.RPAREN:
            raise self.error("unexpected ')' without a matching '('", token)
        if token.kind is not TokenKind.EOF:
            raise self.error(
                f"unexpected {self.describe(token)} after a complete predicate; "
                "expected '&&', '||' or the end of the rule",
                token,
            )
        return expr

    def expression(self) -> Expr:
        start = self.peek.start
        terms = [self.term()]
        spans = [(start, self.last_end)]
        ops: list[Token] = []
        while self.peek.kind in (TokenKind.AND, TokenKind.OR):
            op = self.peek
            if ops and op.kind is not ops[0].kind:
                raise self.error(self.mixed_message(spans, ops), op)
            ops.append(self.advance())
            term_start = self.peek.start
            terms.append(self.term())
            spans.append((term_start, self.last_end))
        if not ops:
            return terms[0]
        node = And if ops[0].kind is TokenKind.AND else Or
        return node(tuple(terms), start=start, end=self.last_end)

    def mixed_message(self, spans: list[tuple[int, int]], ops: list[Token]) -> str:
        """Both readings of ``a && b || c``, using the operands as written."""
        texts = [self.source[s:e] for s, e in spans] + [self.next_term_text()]
        first = ops[0].text
        second = "||" if first == "&&" else "&&"
        run = f" {first} ".join(texts[:-1])
        grouped_before = f"({run}) {second} {texts[-1]}"
        head = f" {first} ".join(texts[:-2])
        grouped_around = f"{head} {first} ({texts[-2]} {second} {texts[-1]})"
        # Usual precedence binds && tighter; Kong's ATC binds || tighter.
        if first == "&&":
            usual, kong = grouped_before, grouped_around
        else:
            usual, kong = grouped_around, grouped_before
        return (
            "'&&' and '||' cannot be mixed without parentheses: write either "
            f"'{usual}' or '{kong}' (Kong reads it as the latter)"
        )

    def next_term_text(self) -> str:
        """The source text of the term after a mixed operator, for the hint (best effort)."""
        try:
            self.advance()
            start = self.peek.start
            self.term()
        except RuleError:
            return "..."
        return self.source[start : self.last_end]

    def term(self) -> Expr:
        token = self.peek
        if token.kind is TokenKind.NOT:
            self.advance()
            if self.peek.kind is not TokenKind.LPAREN:
                raise self.error(
                    "'!' applies only to a parenthesised expression: write '!( ... )'", token
                )
            operand = self.group()
            return Not(operand, start=token.start, end=self.last_end)
        if token.kind is TokenKind.LPAREN:
            return self.group()
        if token.kind is TokenKind.WORD:
            return self.predicate()
        if token.kind is TokenKind.RPAREN:
            raise self.error("unexpected ')': expected a predicate or '('", token)
        if token.kind is TokenKind.EOF:
            raise self.error("the rule ends where a predicate or '(' is expected", token)
        raise self.error(
            f"expected a field (such as http.path) or '(' but found {self.describe(token)}", token
        )

    def group(self) -> Expr:
        opening = self.advance()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"parentheses nested more than {MAX_DEPTH} deep", opening)
        inner = self.expression()
        self.depth -= 1
        closing = self.peek
        if closing.kind is TokenKind.RPAREN:
            self.advance()
            return inner
        if closing.kind is TokenKind.EOF:
            raise self.error("missing ')' to close this '('", opening)
        raise self.error(
            f"unexpected {self.describe(closing)}; expected '&&', '||' or ')'", closing
        )

    def predicate(self) -> Predicate:
        start = self.peek.start
        lhs = self.lhs(0)
        op_token = self.peek
        op = self.operator()
        op_end = self.last_end
        rhs = self.literal(op)
        return Predicate(
            lhs, op, rhs, start=start, end=rhs.end, op_start=op_token.start, op_end=op_end
        )

    def lhs(self, nesting: int) -> Lhs:
        token = self.peek
        if token.kind is not TokenKind.WORD:
            raise self.error(
                f"expected a field (such as http.path) but found {self.describe(token)}", token
            )
        self.advance()
        if self.peek.kind is not TokenKind.LPAREN:
            return Field(token.text, start=token.start, end=token.end)
        if token.text not in TRANSFORMS:
            raise self.error(f"unknown function '{token.text}'; use lower() or any()", token)
        if nesting >= MAX_DEPTH:
            raise self.error(f"functions nested more than {MAX_DEPTH} deep", token)
        self.advance()
        arg = self.lhs(nesting + 1)
        closing = self.peek
        if closing.kind is not TokenKind.RPAREN:
            raise self.error(
                f"expected ')' to close {token.text}( but found {self.describe(closing)}", closing
            )
        self.advance()
        return Transform(token.text, arg, start=token.start, end=closing.end)

    def operator(self) -> Operator:
        token = self.peek
        if token.kind is TokenKind.OP:
            self.advance()
            return Operator(token.text)
        if token.kind is TokenKind.WORD:
            if token.text in _WORD_OPERATORS:
                self.advance()
                return _WORD_OPERATORS[token.text]
            if token.text == "not":
                self.advance()
                follow = self.peek
                if follow.kind is TokenKind.WORD and follow.text == "in":
                    self.advance()
                    return Operator.NOT_IN
                raise self.error(
                    f"expected 'in' after 'not' but found {self.describe(follow)}", follow
                )
        if token.kind is TokenKind.NOT:
            raise self.error(
                "'!' negates only a parenthesised expression; for inequality write '!='", token
            )
        raise self.error(
            f"expected an operator ({_OPERATOR_LIST}) but found {self.describe(token)}", token
        )

    def literal(self, op: Operator) -> Literal:
        token = self.peek
        value = token.value
        literal: Literal
        if isinstance(value, str):
            literal = StringLiteral(value, raw=token.raw, start=token.start, end=token.end)
        elif isinstance(value, int):
            literal = IntLiteral(value, start=token.start, end=token.end)
        elif isinstance(value, IPv4Address | IPv6Address):
            literal = IpLiteral(value, start=token.start, end=token.end)
        elif isinstance(value, IPv4Network | IPv6Network):
            literal = CidrLiteral(value, start=token.start, end=token.end)
        elif token.kind is TokenKind.WORD:
            raise self.error(
                f"expected a value after '{op}' but found the word '{token.text}'; "
                'strings are written in double quotes ("...")',
                token,
            )
        else:
            raise self.error(
                f"expected a value (string, integer, IP address or CIDR) after '{op}' "
                f"but found {self.describe(token)}",
                token,
            )
        self.advance()
        return literal
