"""Regexes that mean what they mean in Kong's Rust regex, compiled once with Python re."""

from __future__ import annotations

import pytest

from dataplane.expr.regex import RegexError, compile_regex


def test_dollar_is_the_end_of_the_text_as_in_rust() -> None:
    pattern = compile_regex("^/a$")
    assert pattern.search("/a")
    assert not pattern.search("/a\n")


def test_multi_line_mode_keeps_dollar_at_line_ends() -> None:
    assert compile_regex("(?m)^b$").search("a\nb\nc")
    assert compile_regex("(?m:a$)").search("a\nb")


def test_dollar_in_a_class_or_escaped_stays_a_dollar() -> None:
    assert compile_regex("[$]").search("a$b")
    assert compile_regex(r"\$").search("a$b")
    assert compile_regex("[^$]$").search("ab")


@pytest.mark.parametrize(
    "pattern",
    [
        r"^/api/v\d+/",
        r"(?i)bot",
        r"(?P<name>[a-z]+)",
        r"a{2}",
        r"a{2,}",
        r"a{2,5}?",
        r"a*?b+?c??",
        r"[]a]",
        r"[^]a]",
        r"[a-z\-]",
        r"\bword\B",
        r"\Ahead",
        r"\x41\u0042\U00000043",
        r"\.\*\+\?\(\)\[\]\{\}\|\^\$\\\/\-\#\ ",
        r"[\d\s\w]",
        r"(?s:.)",
        r"(?x) a b # spaced",
        r"(?:a|b)",
        r"(a+){1,5}",
        r"(a+)?",
        r"(ab)+",
        r"(a|b)*c+",
        r"(?i)(a+)",
        r"a}",
        "",
    ],
)
def test_portable_patterns_compile(pattern: str) -> None:
    compile_regex(pattern)


@pytest.mark.parametrize(
    ("pattern", "fragment", "offset", "length"),
    [
        (r"(a)\1", "backreferences", 3, 2),
        (r"\0", "octal", 0, 2),
        (r"[\1]", "backreferences", 1, 2),
        ("(?=a)", "look-ahead", 0, 3),
        ("(?!a)", "negative look-ahead", 0, 3),
        ("(?<=a)", "look-behind", 0, 4),
        ("(?<!a)", "negative look-behind", 0, 4),
        ("(?P<x>a)(?P=x)", "named backreference", 8, 4),
        ("(?#c)", "comment group", 0, 3),
        ("(?>a)", "atomic group", 0, 3),
        ("(a)?(?(1)b|c)", "conditional group", 4, 3),
        ("a*+", "possessive", 2, 1),
        ("a?+", "possessive", 2, 1),
        ("a{2}+", "possessive", 4, 1),
        ("a*?+", "possessive", 3, 1),
        (r"a\Z", "\\Z is not supported by Rust regex", 1, 2),
        (r"a\z", "\\z is not supported by Python re", 1, 2),
        (r"\N{BULLET}", "named characters", 0, 2),
        (r"\p{L}", "Unicode classes", 0, 2),
        (r"\<", "word boundary in Rust", 0, 2),
        (r"\>", "word boundary in Rust", 0, 2),
        (r"\é", "not a valid escape in Rust", 0, 1),
        (r"\q", "unsupported escape", 0, 2),
        (r"[\b]", "unsupported escape", 1, 2),
        ("[a[b]", "nested class", 2, 1),
        ("[a&&b]", "set operation", 2, 2),
        ("[a~~b]", "set operation", 2, 2),
        ("(?a)x", "'a' flag", 0, 4),
        ("(?L)x", "'L' flag", 0, 4),
        ("a{", "'{' must be escaped", 1, 1),
        ("a{x}", "'{' must be escaped", 1, 1),
        ("{2}", "invalid regex: nothing to repeat", 0, 1),
        ("a\\", "lone", 1, 1),
        ("(a+)+", "repeated group that itself repeats", 4, 1),
        ("x(a*b)*", "repeated group that itself repeats", 6, 1),
        ("((a+))+", "repeated group that itself repeats", 6, 1),
        ("(?:a+){2,}", "repeated group that itself repeats", 6, 4),
        ("(?i:a+)+", "repeated group that itself repeats", 7, 1),
        ("(?P<n>a*)*?", "repeated group that itself repeats", 9, 1),
    ],
)
def test_constructs_rust_regex_lacks_are_rejected(
    pattern: str, fragment: str, offset: int, length: int
) -> None:
    with pytest.raises(RegexError) as caught:
        compile_regex(pattern)
    assert fragment in caught.value.message
    assert (caught.value.offset, caught.value.length) == (offset, length)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("(abc", "missing ), unterminated subpattern"),
        ("[a-", "unterminated character set"),
        ("a**", "multiple repeat"),
        ("(?i", "invalid regex: missing -, : or )"),
        ("x(?i)y", "global flags not at the start"),
        ("[a||b]", "ambiguous between Python and Rust"),
    ],
)
def test_python_errors_and_warnings_become_regex_errors(pattern: str, fragment: str) -> None:
    with pytest.raises(RegexError) as caught:
        compile_regex(pattern)
    assert fragment in caught.value.message
