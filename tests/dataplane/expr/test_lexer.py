"""Lexer: token kinds, decoded literals, positions, and errors with their ranges."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest

from dataplane.expr.errors import RuleError
from dataplane.expr.lexer import Token, TokenKind, iter_tokens, tokenize

K = TokenKind


def _kinds(source: str) -> list[TokenKind]:
    return [token.kind for token in tokenize(source)]


def _value(source: str) -> object:
    tokens = tokenize(source)
    assert len(tokens) == 2, tokens  # one literal and EOF
    return tokens[0].value


def test_a_rule_becomes_tokens_with_positions() -> None:
    tokens = tokenize('!(http.method == "GET") && net.src.ip not in 10.0.0.0/8')
    assert [(t.kind, t.text, t.start, t.end) for t in tokens] == [
        (K.NOT, "!", 0, 1),
        (K.LPAREN, "(", 1, 2),
        (K.WORD, "http.method", 2, 13),
        (K.OP, "==", 14, 16),
        (K.STRING, '"GET"', 17, 22),
        (K.RPAREN, ")", 22, 23),
        (K.AND, "&&", 24, 26),
        (K.WORD, "net.src.ip", 27, 37),
        (K.WORD, "not", 38, 41),
        (K.WORD, "in", 42, 44),
        (K.CIDR, "10.0.0.0/8", 45, 55),
        (K.EOF, "", 55, 55),
    ]


@pytest.mark.parametrize("op", ["==", "!=", "~", "^=", "=^", ">", ">=", "<", "<="])
def test_every_symbol_operator_is_one_token(op: str) -> None:
    assert tokenize(f"a{op}1")[1] == Token(K.OP, op, 1, 1 + len(op))


def test_whitespace_is_free_and_words_run_until_a_symbol() -> None:
    assert _kinds("\ta.b_c||\n(x)") == [K.WORD, K.OR, K.LPAREN, K.WORD, K.RPAREN, K.EOF]
    assert tokenize('http.path contains"x"')[1].text == "contains"


@pytest.mark.parametrize(
    ("source", "value"),
    [
        (r'"plain"', "plain"),
        (r'"a\"b"', 'a"b'),
        (r'"a\\b"', "a\\b"),
        (r'"\n\r\t"', "\n\r\t"),
        ('"multi\nline"', "multi\nline"),
        ('""', ""),
        ('"é ☃"', "é ☃"),
        ('r#"\\d+"#', "\\d+"),
        ('r#"a"b"#', 'a"b'),
        ('r#""#', ""),
    ],
)
def test_strings_are_decoded(source: str, value: str) -> None:
    assert _value(source) == value


def test_raw_strings_are_marked_raw() -> None:
    raw, plain = tokenize('r#"x"# "x"')[:2]
    assert raw.raw
    assert not plain.raw
    assert raw.kind is plain.kind is K.STRING


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-42", -42),
        ("0x2a", 42),
        ("0x2A", 42),
        ("-0x10", -16),
        ("052", 42),
        ("00", 0),
        ("08", 8),  # not octal: Kong's grammar falls back to decimal
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775807", -(2**63) + 1),
    ],
)
def test_integers_in_decimal_hex_and_octal(source: str, value: int) -> None:
    assert _value(source) == value


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("10.0.0.1", IPv4Address("10.0.0.1")),
        ("255.255.255.255", IPv4Address("255.255.255.255")),
        ("::1", IPv6Address("::1")),
        ("::", IPv6Address("::")),
        ("fd00::1", IPv6Address("fd00::1")),
        ("FD00:0:0::1", IPv6Address("fd00::1")),
        ("2001:db8:0:0:0:0:0:1", IPv6Address("2001:db8::1")),
        ("10.0.0.0/8", ip_network("10.0.0.0/8")),
        ("0.0.0.0/0", ip_network("0.0.0.0/0")),
        ("fd00::/8", ip_network("fd00::/8")),
        ("::/0", ip_network("::/0")),
    ],
)
def test_addresses_and_cidrs(source: str, value: object) -> None:
    assert _value(source) == value


def test_a_word_is_a_word_unless_it_runs_into_a_colon() -> None:
    assert _kinds("fd00 == dead:beef::1") == [K.WORD, K.OP, K.IP, K.EOF]
    assert _kinds('r == "x"') == [K.WORD, K.OP, K.STRING, K.EOF]


@pytest.mark.parametrize(
    ("source", "fragment", "start", "end"),
    [
        ('"abc', "unterminated string", 0, 4),
        ('x == "abc', "unterminated string", 5, 9),
        ('r#"abc"', "unterminated raw string", 0, 7),
        (r'"a\x"', "invalid escape '\\x'", 2, 4),
        ('"a\\', "invalid escape", 2, 3),
        ("a & b", "did you mean '&&'?", 2, 3),
        ("a | b", "did you mean '||'?", 2, 3),
        ("a = b", "did you mean '=='?", 2, 3),
        ("'x'", "double quotes", 0, 1),
        ("a-b", "write '-' as '_'", 1, 2),
        ("#", "unexpected character '#'", 0, 1),
        ("\x00", "unexpected character U+0000", 0, 1),
        ("é", "unexpected character 'é'", 0, 1),
        ("1.2.3", "invalid IPv4 address '1.2.3'", 0, 5),
        ("1.2.3.4.5", "invalid IPv4 address", 0, 9),
        ("256.0.0.1", "invalid IPv4 address", 0, 9),
        ("1::2::3", "invalid IPv6 address", 0, 7),
        ("12345::1", "invalid IPv6 address", 0, 8),
        ("10.0.0.1/8", "has host bits set; did you mean 10.0.0.0/8?", 0, 10),
        ("10.0.0.0/", "prefix length must be a number", 0, 9),
        ("10.0.0.0/123", "prefix length is at most 32", 0, 12),
        ("10.0.0.0/033", "prefix length is at most 32", 0, 12),
        ("fd00::/1000", "prefix length is at most 128", 0, 11),
        ("0X10", "invalid integer '0X10'", 0, 4),
        ("0779", "invalid integer", 0, 4),
        ("-9223372036854775808", "out of the 64-bit signed range", 0, 20),
        ("1_000", "invalid integer", 0, 5),
    ],
)
def test_bad_input_is_an_error_with_its_range(
    source: str, fragment: str, start: int, end: int
) -> None:
    with pytest.raises(RuleError) as caught:
        tokenize(source)
    (error,) = caught.value.errors
    assert fragment in error.message
    assert (error.start, error.end) == (start, end)


def test_tokens_come_one_at_a_time_up_to_an_error() -> None:
    stream = iter_tokens("a == @")
    assert next(stream).text == "a"
    assert next(stream).text == "=="
    with pytest.raises(RuleError):
        next(stream)
