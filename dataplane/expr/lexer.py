"""Lexer: rule text to tokens, with literals already decoded and checked.

Literal forms follow Kong's ATC grammar: strings with ``\\" \\\\ \\n \\r \\t`` escapes, raw strings
``r#"..."#``, decimal/hex (``0x``)/octal (leading ``0``) integers with an optional ``-``, IPv4 and
IPv6 addresses and CIDRs. Words (field names, ``in``, ``not``, ``contains``, ``lower``, ``any``)
are one token kind; the parser gives them meaning by position.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)
from typing import Final

from dataplane.expr.errors import RuleError

__all__ = ["Token", "TokenKind", "TokenValue", "iter_tokens", "tokenize"]


class TokenKind(Enum):
    """The kinds of token; the value is how messages name them."""

    WORD = "word"
    STRING = "string"
    INT = "integer"
    IP = "IP address"
    CIDR = "CIDR"
    OP = "operator"
    AND = "'&&'"
    OR = "'||'"
    NOT = "'!'"
    LPAREN = "'('"
    RPAREN = "')'"
    EOF = "end of rule"


TokenValue = str | int | IPv4Address | IPv6Address | IPv4Network | IPv6Network | None


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, source text and range, and decoded value for literals."""

    kind: TokenKind
    text: str
    start: int
    end: int
    value: TokenValue = None
    raw: bool = False


_WORD: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
# A literal that is not a string: numbers, addresses and CIDRs, read greedily so that a
# malformed one is reported whole ("10.0.0.300/8") rather than as a confusing tail.
_LITERAL: Final = re.compile(r"-?[0-9A-Za-z_.:]+(?:/[0-9A-Za-z_.:]*)?")
_INT: Final = re.compile(r"(-?)(?:0([0-7]+)|0x([0-9a-fA-F]+)|([0-9]+))")
_IPV4: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_IPV6: Final = re.compile(r"(?:[0-9a-fA-F]{1,4}|:):(?:[0-9a-fA-F]{1,4}|:)*")
_I64_MAX: Final = 2**63 - 1
_ESCAPES: Final = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_OPERATORS: Final = ("==", "!=", "^=", "=^", ">=", "<=", "~", ">", "<")
_LOGICAL: Final = {"&&": TokenKind.AND, "||": TokenKind.OR}
_PARENS: Final = {"(": TokenKind.LPAREN, ")": TokenKind.RPAREN}
_HINTS: Final = {
    "&": "did you mean '&&'?",
    "|": "did you mean '||'?",
    "=": "did you mean '=='?",
    "'": "strings are written in double quotes",
}


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens ending with an EOF token; raise RuleError on bad input."""
    return list(iter_tokens(source))


def iter_tokens(source: str) -> Iterator[Token]:
    """Tokens one at a time (the parser pulls them, so errors come in reading order)."""
    pos, size = 0, len(source)
    while True:
        while pos < size and source[pos] in " \t\r\n":
            pos += 1
        if pos >= size:
            yield Token(TokenKind.EOF, "", size, size)
            return
        token = _next_token(source, pos)
        yield token
        pos = token.end


def _next_token(source: str, pos: int) -> Token:
    char = source[pos]
    pair = source[pos : pos + 2]
    if source.startswith('r#"', pos):
        return _raw_string(source, pos)
    if char == '"':
        return _string(source, pos)
    if pair in _LOGICAL:
        return Token(_LOGICAL[pair], pair, pos, pos + 2)
    if char in _PARENS:
        return Token(_PARENS[char], char, pos, pos + 1)
    for op in _OPERATORS:
        if source.startswith(op, pos):
            return Token(TokenKind.OP, op, pos, pos + len(op))
    if char == "!":
        return Token(TokenKind.NOT, char, pos, pos + 1)
    if char.isascii() and char.isalpha():
        word = _WORD.match(source, pos)
        assert word is not None
        # A word running into ':' is the start of an IPv6 address such as fd00::1.
        if not source.startswith(":", word.end()):
            return Token(TokenKind.WORD, word[0], pos, word.end())
    starts_literal = char.isascii() and (char.isalnum() or char == ":")
    if starts_literal or (char == "-" and _digit_at(source, pos + 1)):
        literal = _LITERAL.match(source, pos)
        assert literal is not None
        return _classify(literal[0], pos)
    raise RuleError.at(_unexpected(source, pos), pos, pos + 1)


def _digit_at(source: str, pos: int) -> bool:
    return pos < len(source) and source[pos].isascii() and source[pos].isdigit()


def _unexpected(source: str, pos: int) -> str:
    char = source[pos]
    shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
    message = f"unexpected character {shown}"
    if char == "-" and pos > 0 and (source[pos - 1].isalnum() or source[pos - 1] == "_"):
        return f"{message}: field names write '-' as '_' (e.g. http.headers.x_request_id)"
    hint = _HINTS.get(char)
    return f"{message}; {hint}" if hint else message


def _string(source: str, start: int) -> Token:
    chars: list[str] = []
    pos, size = start + 1, len(source)
    while pos < size:
        char = source[pos]
        if char == '"':
            value = "".join(chars)
            return Token(TokenKind.STRING, source[start : pos + 1], start, pos + 1, value)
        if char == "\\":
            escaped = _ESCAPES.get(source[pos + 1 : pos + 2])
            if escaped is None:
                shown = source[pos : pos + 2]
                raise RuleError.at(
                    f"invalid escape '{shown}' in string; allowed: "
                    + '\\" \\\\ \\n \\r \\t (use a raw string r#"..."# for regexes)',
                    pos,
                    min(pos + 2, size),
                )
            chars.append(escaped)
            pos += 2
            continue
        chars.append(char)
        pos += 1
    raise RuleError.at("unterminated string: missing closing '\"'", start, size)


def _raw_string(source: str, start: int) -> Token:
    close = source.find('"#', start + 3)
    if close < 0:
        raise RuleError.at("unterminated raw string: missing closing '\"#'", start, len(source))
    end = close + 2
    value = source[start + 3 : close]
    return Token(TokenKind.STRING, source[start:end], start, end, value, raw=True)


def _classify(text: str, start: int) -> Token:
    end = start + len(text)
    try:
        if "/" in text:
            return Token(TokenKind.CIDR, text, start, end, _cidr(text))
        if ":" in text:
            return Token(TokenKind.IP, text, start, end, _ipv6(text))
        if "." in text and text[0].isdigit():
            return Token(TokenKind.IP, text, start, end, _ipv4(text))
        return Token(TokenKind.INT, text, start, end, _int(text))
    except ValueError as exc:
        raise RuleError.at(str(exc), start, end) from None


def _int(text: str) -> int:
    match = _INT.match(text)
    if match is None or match.end() != len(text):
        raise ValueError(
            f"invalid integer {text!r}: write decimal (42, -42), hex (0x2a) or octal (052)"
        )
    sign, octal, hexa, decimal = match.groups()
    if octal is not None:
        magnitude = int(octal, 8)
    elif hexa is not None:
        magnitude = int(hexa, 16)
    else:
        magnitude = int(decimal)
    if magnitude > _I64_MAX:
        raise ValueError(f"integer {text} is out of the 64-bit signed range")
    return -magnitude if sign else magnitude


def _ipv4(text: str) -> IPv4Address:
    if _IPV4.fullmatch(text):
        try:
            return IPv4Address(text)
        except ValueError:
            pass
    raise ValueError(f"invalid IPv4 address {text!r}")


def _ipv6(text: str) -> IPv6Address:
    if "." in text:
        raise ValueError(
            f"invalid IPv6 address {text!r}: write embedded IPv4 in hex (::ffff:a00:1)"
        )
    if _IPV6.fullmatch(text):
        try:
            return IPv6Address(text)
        except ValueError:
            pass
    raise ValueError(f"invalid IPv6 address {text!r}")


def _cidr(text: str) -> IPv4Network | IPv6Network:
    address, _, prefix = text.partition("/")
    v6 = ":" in address
    limit = 128 if v6 else 32
    if not (prefix.isascii() and prefix.isdigit()):
        raise ValueError(f"invalid CIDR {text!r}: the prefix length must be a number")
    # Kong's grammar takes at most 2 (IPv4) or 3 (IPv6) digits.
    if len(prefix) > len(str(limit)) or int(prefix) > limit:
        raise ValueError(f"invalid CIDR {text!r}: the prefix length is at most {limit}")
    base = _ipv6(address) if v6 else _ipv4(address)
    network = ip_network(f"{base}/{int(prefix)}", strict=False)
    if network.network_address != base:
        raise ValueError(f"CIDR {text} has host bits set; did you mean {network}?")
    return network
