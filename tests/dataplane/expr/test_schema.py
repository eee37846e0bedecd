"""Field schema: every field of EXPRESSIONS.md, as data, and how names resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplane.expr import FieldType, Phase, known_fields
from dataplane.expr.schema import FieldError, resolve_field

S, INT, IP = FieldType.STRING, FieldType.INT, FieldType.IP
REQ, RESP = Phase.REQUEST, Phase.RESPONSE

TABLE = {
    "http.method": (S, False, REQ),
    "http.host": (S, False, REQ),
    "http.path": (S, False, REQ),
    "http.path.segments.<N>": (S, False, REQ),
    "http.path.segments.<N>_<M>": (S, False, REQ),
    "http.path.segments.len": (INT, False, REQ),
    "http.headers.<name>": (S, True, REQ),
    "http.queries.<name>": (S, True, REQ),
    "net.protocol": (S, False, REQ),
    "tls.sni": (S, False, REQ),
    "net.src.ip": (IP, False, REQ),
    "net.dst.ip": (IP, False, REQ),
    "net.src.port": (INT, False, REQ),
    "net.dst.port": (INT, False, REQ),
    "http.response.status": (INT, False, RESP),
    "http.response.headers.<name>": (S, True, RESP),
    "latency.total_ms": (INT, False, RESP),
    "latency.upstream_ms": (INT, False, RESP),
    "latency.gateway_ms": (INT, False, RESP),
}


def test_known_fields_are_the_documented_table() -> None:
    fields = known_fields()
    assert {f.name: (f.type, f.multi_valued, f.phase) for f in fields} == TABLE
    for info in fields:
        assert info.description
        assert info.example


def test_operators_follow_the_type() -> None:
    by_name = {f.name: f for f in known_fields()}
    assert by_name["http.path"].operators == ("==", "!=", "~", "^=", "=^", "contains")
    assert by_name["net.src.port"].operators == ("==", "!=", ">", ">=", "<", "<=")
    assert by_name["net.src.ip"].operators == ("==", "!=", "in", "not in")


def test_known_fields_is_a_copy() -> None:
    known_fields().clear()
    assert known_fields()


@pytest.mark.parametrize(
    ("name", "pattern", "param"),
    [
        ("http.method", "http.method", None),
        ("http.path.segments.len", "http.path.segments.len", None),
        ("http.path.segments.0", "http.path.segments.<N>", 0),
        ("http.path.segments.12", "http.path.segments.<N>", 12),
        ("http.path.segments.0_3", "http.path.segments.<N>_<M>", (0, 3)),
        ("http.headers.x_debug", "http.headers.<name>", "x_debug"),
        ("http.headers.x.y", "http.headers.<name>", "x.y"),
        ("http.queries.Tenant", "http.queries.<name>", "Tenant"),
        ("http.response.headers.x_cache", "http.response.headers.<name>", "x_cache"),
    ],
)
def test_names_resolve_to_their_entry(name: str, pattern: str, param: object) -> None:
    resolved = resolve_field(name)
    assert resolved.name == name
    assert resolved.info.name == pattern
    assert resolved.param == param


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("http.metod", "unknown field 'http.metod'; did you mean 'http.method'?"),
        ("zzz", "unknown field 'zzz'"),
        ("http.query.tenant", "did you mean 'http.queries.tenant'?"),
        ("http.response.header.x_cache", "did you mean 'http.response.headers.x_cache'?"),
        ("http.path.segment.1", "did you mean 'http.path.segments.1'?"),
        ("net.scr.ip", "did you mean 'net.src.ip'?"),
        ("http.headers", "'http.headers' needs a name after it, e.g. 'http.headers.user_agent'"),
        ("http.queries.", "missing name after 'http.queries.'"),
        ("http.headers.Accept", "did you mean 'http.headers.accept'?"),
        ("http.path.segments.x", "invalid path segment 'x'"),
        ("http.path.segments.3_2", "the first index must be smaller"),
        ("http.path.segments.1_03", "invalid path segment '1_03'"),
        ("http.path.segments._1", "invalid path segment '_1'"),
        ("http.path.segments.len0", "invalid path segment 'len0'"),
        ("http.path.segments.99999", "too large"),
        ("http.path.segments.1_99999", "too large"),
    ],
)
def test_unknown_names_say_what_to_write(name: str, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        resolve_field(name)
    assert message in str(caught.value)


def test_the_user_docs_list_every_field_as_the_schema_does() -> None:
    docs = Path(__file__).parents[3] / "docs" / "expressions.md"
    rows = [line for line in docs.read_text().splitlines() if line.startswith("| `")]
    for info in known_fields():
        multi = "yes" if info.multi_valued else "no"
        row = f"| `{info.name}` | {info.type} | {multi} | {info.phase} | {info.description} |"
        assert any(line.startswith(row) for line in rows), info.name
