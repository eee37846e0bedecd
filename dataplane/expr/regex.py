"""Regexes that mean the same in Python ``re`` and Kong's Rust ``regex`` crate.

A rule's regex is checked to use only the syntax both engines share (no backreferences,
look-around, atomic groups, possessive quantifiers, conditionals, comments, ``\\Z``, nested
classes or class set operations, ASCII/locale flags, loose ``{``), then compiled once with
Python ``re``. Rust's engine is linear-time and Python's backtracks, so the classic exponential
shape, an unbounded repetition of a group that holds one (``(a+)+``), is refused too.
Rust's ``$`` (without the ``m`` flag) matches only at the very end of the text, Python's also
before a final newline, so ``$`` is compiled as ``\\Z`` to keep Kong's meaning.
"""

from __future__ import annotations

import re
import warnings
from typing import Final

__all__ = ["RegexError", "compile_regex"]

# Escapes both engines accept with the same meaning (outside classes; \b \B \A are not
# allowed inside a class, where Python reads \b as backspace and Rust rejects it).
_SHARED_ESCAPES: Final = frozenset("dDwWsSnrtfvaxuUbBA")
_CLASS_ONLY_ERRORS: Final = frozenset("bBA")
_QUANTIFIER: Final = re.compile(r"\{[0-9]+(?:,[0-9]*)?\}")
_FLAGS: Final = re.compile(r"\(\?([A-Za-z]*)(?:-([A-Za-z]*))?[:)]")
_GROUP_ERRORS: Final = (
    ("(?=", "look-ahead"),
    ("(?!", "negative look-ahead"),
    ("(?<=", "look-behind"),
    ("(?<!", "negative look-behind"),
    ("(?P=", "a named backreference"),
    ("(?#", "a comment group"),
    ("(?>", "an atomic group"),
    ("(?(", "a conditional group"),
)
_ESCAPE_ERRORS: Final = {
    "Z": "\\Z is not supported by Rust regex; '$' already means the end of the text",
    "z": "\\z is not supported by Python re; '$' means the end of the text",
    "N": "named characters (\\N{...}) are not supported by Rust regex",
    "p": "Unicode classes (\\p{...}) are not supported by Python re",
    "P": "Unicode classes (\\P{...}) are not supported by Python re",
    "<": "'\\<' is a word boundary in Rust regex but a plain '<' in Python; write '<' or '\\b'",
    ">": "'\\>' is a word boundary in Rust regex but a plain '>' in Python; write '>' or '\\b'",
}


class RegexError(ValueError):
    """A regex that is invalid or not portable; ``offset``/``length`` locate it in the pattern."""

    def __init__(self, message: str, offset: int | None = None, length: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.length = length


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Check that ``pattern`` is portable and compile it with Rust's meaning of ``$``."""
    translated = _Scanner(pattern).translate()
    _compile(pattern)  # errors and warnings at positions of the pattern as written
    return _compile(translated)


def _compile(pattern: str) -> re.Pattern[str]:
    with warnings.catch_warnings():
        # Python warns (FutureWarning) where it reads a class differently from Rust: "[[",
        # "--", "&&", "~~", "||" inside a class.
        warnings.simplefilter("error")
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise RegexError(f"invalid regex: {exc.msg}", exc.pos) from None
        except Warning as exc:
            raise RegexError(f"regex is ambiguous between Python and Rust: {exc}") from None


class _Scanner:
    """One pass over the pattern: rejects what only one engine knows, rewrites ``$``."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pieces: list[str] = []
        self.dollars: list[int] = []
        self.multiline = False
        self.pos = 0
        self.quantified = False  # the previous item was a quantifier
        self.lazy = False  # ... followed by '?'
        # For each open group: whether it holds an unbounded repetition; and, right after a
        # ')', whether the group just closed does.
        self.groups: list[bool] = []
        self.closed_group = False

    def fail(self, message: str, length: int = 1) -> RegexError:
        return RegexError(f"{message} (at position {self.pos} of the regex)", self.pos, length)

    def emit(self, text: str) -> None:
        self.pieces.append(text)
        self.pos += len(text)

    def translate(self) -> str:
        pattern = self.pattern
        while self.pos < len(pattern):
            char = pattern[self.pos]
            if char == "\\":
                self.escape(in_class=False)
            elif char == "[":
                self.char_class()
            elif char == "(":
                self.group()
            elif char == ")":
                self.close_group()
                self.quantified = False
                continue
            elif char in "*+?":
                self.quantifier(char)
                continue
            elif char == "{":
                match = _QUANTIFIER.match(pattern, self.pos)
                if match is None:
                    raise self.fail(
                        "'{' must be escaped as '\\{' unless it starts a repetition "
                        "such as {2} or {2,5}"
                    )
                self.quantifier(match[0])
                continue
            else:
                if char == "$":
                    self.dollars.append(len(self.pieces))
                self.emit(char)
            self.quantified = False
            self.closed_group = False
        if not self.multiline:
            for index in self.dollars:
                self.pieces[index] = "\\Z"
        return "".join(self.pieces)

    def quantifier(self, text: str) -> None:
        if self.quantified:
            if text == "+":
                raise self.fail("possessive quantifiers are not supported by Rust regex")
            if text == "?" and not self.lazy:
                self.lazy = True
                self.emit(text)
                return
        unbounded = text in "*+" or text.endswith(",}")
        if unbounded:
            # Rust's engine runs in linear time; Python's backtracks, and a repeated group that
            # itself repeats ("(a+)+") can take exponential time on the data plane's hot path.
            if self.closed_group:
                raise self.fail(
                    "a repeated group that itself repeats, such as (a+)+, can take exponential "
                    "time in Python's regex engine; bound the outer repetition or flatten it",
                    len(text),
                )
            if self.groups:
                self.groups[-1] = True
        self.quantified = True
        self.lazy = False
        self.closed_group = False
        self.emit(text)

    def close_group(self) -> None:
        inner = self.groups.pop() if self.groups else False
        if inner and self.groups:
            self.groups[-1] = True
        self.closed_group = inner
        self.emit(")")

    def escape(self, *, in_class: bool) -> None:
        follow = self.pattern[self.pos + 1 : self.pos + 2]
        if not follow:
            raise self.fail("regex ends with a lone '\\'")
        if follow in _ESCAPE_ERRORS:
            raise self.fail(_ESCAPE_ERRORS[follow], 2)
        if follow.isdigit():
            raise self.fail("backreferences and octal escapes are not supported by Rust regex", 2)
        if not follow.isascii():
            raise self.fail(f"'\\{follow}' is not a valid escape in Rust regex; write '{follow}'")
        if follow.isalpha() and (
            follow not in _SHARED_ESCAPES or (in_class and follow in _CLASS_ONLY_ERRORS)
        ):
            raise self.fail(f"unsupported escape '\\{follow}'", 2)
        self.emit("\\" + follow)

    def char_class(self) -> None:
        pattern = self.pattern
        self.emit("[")
        if pattern.startswith("^", self.pos):
            self.emit("^")
        if pattern.startswith("]", self.pos):
            self.emit("]")  # a leading ']' is a literal in both engines
        while self.pos < len(pattern):
            char = pattern[self.pos]
            if char == "]":
                self.emit(char)
                return
            if char == "\\":
                self.escape(in_class=True)
                continue
            if char == "[":
                raise self.fail(
                    "'[' inside a character class starts a nested class in Rust regex; write '\\['"
                )
            pair = pattern[self.pos : self.pos + 2]
            if pair in ("&&", "--", "~~"):
                raise self.fail(
                    f"'{pair}' inside a character class is a set operation in Rust regex; "
                    f"escape it",
                    2,
                )
            self.emit(char)
        # unterminated: Python's compile reports it

    def group(self) -> None:
        pattern = self.pattern
        if not pattern.startswith("(?", self.pos):
            self.groups.append(False)
            self.emit("(")
            return
        for prefix, what in _GROUP_ERRORS:
            if pattern.startswith(prefix, self.pos):
                raise self.fail(f"{what} is not supported by Rust regex", len(prefix))
        if pattern.startswith("(?P<", self.pos):
            self.groups.append(False)
            self.emit("(?P<")
            return
        match = _FLAGS.match(pattern, self.pos)
        if match is None:
            self.groups.append(False)
            self.emit("(?")  # Python's compile reports what follows
            return
        on, off = match[1], match[2] or ""
        for flag in on + off:
            if flag in "aL":
                raise self.fail(f"the '{flag}' flag is not supported by Rust regex", len(match[0]))
        if "m" in on:
            self.multiline = True
        self.emit(match[0][:-1])
        if match[0].endswith(")"):
            self.emit(")")  # flags for the whole pattern: no group
        else:
            self.groups.append(False)  # the ':' is scanned as usual
