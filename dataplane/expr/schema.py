"""The field schema, kept as data: which fields exist, their types, phases and operators.

The checker resolves every field a rule names against this table, the compiler picks an accessor
by the resolved field's pattern, and the docs and the viewer list it through ``known_fields()``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "OPERATORS_BY_TYPE",
    "FieldError",
    "FieldInfo",
    "FieldType",
    "Phase",
    "ResolvedField",
    "known_fields",
    "resolve_field",
]


class FieldType(StrEnum):
    """What a field holds, and so which operators and literals it takes."""

    STRING = "string"
    INT = "int"
    IP = "ip"


class Phase(StrEnum):
    """When a field is known: on arrival (``request``) or after the response (``response``)."""

    REQUEST = "request"
    RESPONSE = "response"


STRING_OPERATORS: Final = ("==", "!=", "~", "^=", "=^", "contains")
INT_OPERATORS: Final = ("==", "!=", ">", ">=", "<", "<=")
IP_OPERATORS: Final = ("==", "!=", "in", "not in")
OPERATORS_BY_TYPE: Final[dict[FieldType, tuple[str, ...]]] = {
    FieldType.STRING: STRING_OPERATORS,
    FieldType.INT: INT_OPERATORS,
    FieldType.IP: IP_OPERATORS,
}


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One entry of the schema; ``name`` is a pattern when it has a ``<placeholder>``."""

    name: str
    type: FieldType
    multi_valued: bool
    phase: Phase
    description: str
    example: str

    @property
    def operators(self) -> tuple[str, ...]:
        """The comparison operators this field takes."""
        return OPERATORS_BY_TYPE[self.type]


_S, _I, _IP = FieldType.STRING, FieldType.INT, FieldType.IP
_REQ, _RESP = Phase.REQUEST, Phase.RESPONSE

METHOD = FieldInfo(
    "http.method", _S, False, _REQ, "The request method, e.g. `GET`.", 'http.method == "POST"'
)
HOST = FieldInfo(
    "http.host",
    _S,
    False,
    _REQ,
    "The `Host` header without its port, lower-cased (as Kong's `http.host`).",
    'lower(http.host) =^ ".example.com"',
)
PATH = FieldInfo(
    "http.path",
    _S,
    False,
    _REQ,
    "The request path, percent-decoded, without the query string.",
    'http.path ^= "/api/v2/"',
)
SEGMENT = FieldInfo(
    "http.path.segments.<N>",
    _S,
    False,
    _REQ,
    "Path segment N, zero-based after the leading `/` (`/a/b/c`: segment 1 is `b`); absent "
    "when the path has fewer segments.",
    'http.path.segments.0 == "orders"',
)
SEGMENT_RANGE = FieldInfo(
    "http.path.segments.<N>_<M>",
    _S,
    False,
    _REQ,
    "Segments N to M (both included, N < M) joined by `/` (`/a/b/c`: `0_1` is `a/b`); absent "
    "when segment M does not exist.",
    'http.path.segments.0_1 == "api/v2"',
)
SEGMENT_COUNT = FieldInfo(
    "http.path.segments.len",
    _I,
    False,
    _REQ,
    "The number of path segments (`/a/b/c` and `/a/b/c/` both have 3, `/` has 0).",
    "http.path.segments.len > 3",
)
HEADER = FieldInfo(
    "http.headers.<name>",
    _S,
    True,
    _REQ,
    "Every value of request header `<name>`, written lower-case with `-` as `_` "
    "(`X-Debug` is `http.headers.x_debug`).",
    'any(http.headers.x_debug) == "1"',
)
QUERY = FieldInfo(
    "http.queries.<name>",
    _S,
    True,
    _REQ,
    'Every value of query argument `<name>` (case-sensitive), URL-decoded; `?foo` gives `""`.',
    'http.queries.tenant == "acme"',
)
PROTOCOL = FieldInfo(
    "net.protocol",
    _S,
    False,
    _REQ,
    "The scheme the client used: `http` or `https`.",
    'net.protocol == "https"',
)
SNI = FieldInfo(
    "tls.sni",
    _S,
    False,
    _REQ,
    "The TLS server name the client sent; absent without TLS or SNI.",
    'tls.sni =^ ".example.com"',
)
SRC_IP = FieldInfo(
    "net.src.ip",
    _IP,
    False,
    _REQ,
    "The client's IP address (an IPv4-mapped IPv6 address counts as IPv4).",
    "net.src.ip in 10.0.0.0/8",
)
DST_IP = FieldInfo(
    "net.dst.ip",
    _IP,
    False,
    _REQ,
    "The gateway address the client connected to.",
    "net.dst.ip == 192.168.1.10",
)
SRC_PORT = FieldInfo("net.src.port", _I, False, _REQ, "The client's port.", "net.src.port >= 1024")
DST_PORT = FieldInfo(
    "net.dst.port",
    _I,
    False,
    _REQ,
    "The gateway port the client connected to.",
    "net.dst.port == 8443",
)
STATUS = FieldInfo(
    "http.response.status",
    _I,
    False,
    _RESP,
    "The response status code.",
    "http.response.status >= 500",
)
RESPONSE_HEADER = FieldInfo(
    "http.response.headers.<name>",
    _S,
    True,
    _RESP,
    "Every value of response header `<name>`, written like request headers.",
    'http.response.headers.x_cache == "MISS"',
)
TOTAL_MS = FieldInfo(
    "latency.total_ms",
    _I,
    False,
    _RESP,
    "Milliseconds from request arrival to the end of the response (fractional values are "
    "compared exactly: 250.4 > 250).",
    "latency.total_ms > 250",
)
UPSTREAM_MS = FieldInfo(
    "latency.upstream_ms",
    _I,
    False,
    _RESP,
    "Milliseconds spent waiting for the upstream; absent when no upstream was called.",
    "latency.upstream_ms > 200",
)
GATEWAY_MS = FieldInfo(
    "latency.gateway_ms",
    _I,
    False,
    _RESP,
    "Milliseconds spent in the gateway itself (total minus upstream).",
    "latency.gateway_ms > 20",
)

_FIELDS: Final = (
    METHOD,
    HOST,
    PATH,
    SEGMENT,
    SEGMENT_RANGE,
    SEGMENT_COUNT,
    HEADER,
    QUERY,
    PROTOCOL,
    SNI,
    SRC_IP,
    DST_IP,
    SRC_PORT,
    DST_PORT,
    STATUS,
    RESPONSE_HEADER,
    TOTAL_MS,
    UPSTREAM_MS,
    GATEWAY_MS,
)
_FIXED: Final = {info.name: info for info in _FIELDS if "<" not in info.name}
# Families whose last part is a name the user picks; longest prefix first so that
# "http.response.headers." is not read as a request header family.
_HEADERS_PREFIX: Final = "http.headers."
_QUERIES_PREFIX: Final = "http.queries."
_RESPONSE_HEADERS_PREFIX: Final = "http.response.headers."
_SEGMENTS_PREFIX: Final = "http.path.segments."
_FAMILY_PREFIXES: Final = (
    _RESPONSE_HEADERS_PREFIX,
    _SEGMENTS_PREFIX,
    _HEADERS_PREFIX,
    _QUERIES_PREFIX,
)
_HEADER_NAME = re.compile(r"[a-z0-9_.]+")
# Kong rejects leading zeros in segment indexes ("01", "1_03").
_INDEX = r"(?:0|[1-9][0-9]*)"
_SEGMENT_INDEX = re.compile(_INDEX)
_SEGMENT_RANGE = re.compile(f"({_INDEX})_({_INDEX})")
_MAX_SEGMENT = 10_000


def known_fields() -> list[FieldInfo]:
    """The field schema as data: every field (or field pattern) a rule may use."""
    return list(_FIELDS)


@dataclass(frozen=True, slots=True)
class ResolvedField:
    """A field as written in a rule, matched to its schema entry.

    ``param`` is the header or query name, the segment index, or the ``(first, last)`` segment
    range; ``None`` for fixed fields.
    """

    name: str
    info: FieldInfo
    param: str | int | tuple[int, int] | None = None


class FieldError(ValueError):
    """A field name the schema does not know (the message says why and what to write)."""


def resolve_field(name: str) -> ResolvedField:
    """Match a field name to the schema, or raise FieldError with a helpful message."""
    info = _FIXED.get(name)
    if info is not None:
        return ResolvedField(name, info)
    for prefix in _FAMILY_PREFIXES:
        if name.startswith(prefix):
            return _resolve_family(name, prefix, name[len(prefix) :])
        if name + "." == prefix:
            raise FieldError(f"'{name}' needs a name after it, e.g. '{prefix}{_example(prefix)}'")
    raise FieldError(_unknown(name))


def _resolve_family(name: str, prefix: str, rest: str) -> ResolvedField:
    if not rest:
        raise FieldError(f"missing name after '{prefix}', e.g. '{prefix}{_example(prefix)}'")
    if prefix == _SEGMENTS_PREFIX:
        return _resolve_segment(name, rest)
    if prefix == _QUERIES_PREFIX:
        return ResolvedField(name, QUERY, rest)
    info = HEADER if prefix == _HEADERS_PREFIX else RESPONSE_HEADER
    if not _HEADER_NAME.fullmatch(rest):
        fixed = rest.lower()
        raise FieldError(f"header names are written in lower case; did you mean '{prefix}{fixed}'?")
    return ResolvedField(name, info, rest)


def _resolve_segment(name: str, rest: str) -> ResolvedField:
    usage = "use N, N_M (N < M) or len, e.g. 'http.path.segments.0'"
    if _SEGMENT_INDEX.fullmatch(rest):
        index = int(rest)
        if index > _MAX_SEGMENT:
            raise FieldError(f"path segment index {index} is too large (at most {_MAX_SEGMENT})")
        return ResolvedField(name, SEGMENT, index)
    match = _SEGMENT_RANGE.fullmatch(rest)
    if match is None:
        raise FieldError(f"invalid path segment '{rest}': {usage}")
    first, last = int(match[1]), int(match[2])
    if first >= last:
        raise FieldError(f"invalid path segment range '{rest}': the first index must be smaller")
    if last > _MAX_SEGMENT:
        raise FieldError(f"path segment index {last} is too large (at most {_MAX_SEGMENT})")
    return ResolvedField(name, SEGMENT_RANGE, (first, last))


def _example(prefix: str) -> str:
    if prefix == _SEGMENTS_PREFIX:
        return "0"
    if prefix == _QUERIES_PREFIX:
        return "tenant"
    return "x_request_id" if "response" in prefix else "user_agent"


def _unknown(name: str) -> str:
    parts = name.split(".")
    candidates = list(_FIXED)
    # A misspelt family prefix ("http.header.x_debug") is best answered with the user's own
    # name under the right prefix, so offer that as a candidate too.
    for prefix in _FAMILY_PREFIXES:
        depth = prefix.count(".")
        if len(parts) > depth:
            candidates.append(prefix + ".".join(parts[depth:]))
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if close:
        return f"unknown field '{name}'; did you mean '{close[0]}'?"
    return f"unknown field '{name}'"
