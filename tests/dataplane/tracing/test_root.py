"""The root span's standard attributes: the C writer and the Python reference agree."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1 import trace_pb2

from dataplane.tracing import root as root_module
from dataplane.tracing import wire
from dataplane.tracing._wire import set_fallback
from dataplane.tracing._wire import write_root as c_write_root
from dataplane.tracing.root import ROOT_FIELDS, python_write_root, write_root
from dataplane.tracing.spans import KIND_SERVER, STATUS_ERROR, STATUS_UNSET, Span

ROUTE = {
    "http.route": "/orders",
    "gateway.route.id": "r-1",
    "gateway.route.name": "orders",
    "gateway.service.id": "s-1",
    "gateway.service.name": "shop",
}


def values(**changes: Any) -> tuple[Any, ...]:
    base: dict[str, Any] = {
        "method": "GET",
        "scheme": "http",
        "host": "shop.example:8000",
        "path": "/orders/7",
        "query": "",
        "client_address": "127.0.0.1",
        "client_port": 50123,
        "server_port": 8000,
        "request_body_size": 0,
        "response_body_size": 42,
        "request_id": "0f" * 16,
        "total_ms": 1.2345,
        "upstream_ms": 0.9876,
        "status": 200,
        "user_agent": "curl/8.0",
        "consumer_id": None,
    }
    assert set(changes) <= set(base)
    base.update(changes)
    return tuple(base[name] for name in ROOT_FIELDS)


def _root(extras: dict[str, Any] | None = None) -> Span:
    span = Span("GET /orders", b"", 1_000, KIND_SERVER, dict(extras or {}))
    span.span_id = b"\x07" * 8
    return span


def _decoded(span: Span) -> tuple[dict[str, bytes], int, int]:
    """The span as the control plane reads it: attributes (key -> encoded AnyValue), status,
    end time; a key written twice fails."""
    scope = trace_pb2.ScopeSpans.FromString(wire.python_trace_spans(b"\x01" * 16, [span]))
    (message,) = scope.spans
    keys = [kv.key for kv in message.attributes]
    assert len(keys) == len(set(keys)), keys
    attributes = {kv.key: kv.value.SerializeToString() for kv in message.attributes}
    return attributes, message.status.code, message.end_time_unix_nano


def _both(
    request: tuple[Any, ...], route: dict[str, Any], extras: dict[str, Any] | None = None
) -> tuple[Span, Span]:
    fast, reference, preencoded = _root(extras), _root(extras), _root(extras)
    c_write_root(fast, 5_000, request, route)
    python_write_root(reference, 5_000, request, route)
    # the route's attributes encoded once per config (as the router keeps them): the same
    c_write_root(preencoded, 5_000, request, route, wire.span_attribute_fields(route))
    assert _decoded(fast) == _decoded(reference)
    assert preencoded.encoded_attributes == fast.encoded_attributes
    assert preencoded.attributes == fast.attributes
    assert wire.trace_spans(b"\x01" * 16, [fast]) == wire.python_trace_spans(b"\x01" * 16, [fast])
    return fast, reference


@pytest.mark.parametrize(
    ("request_values", "route", "extras"),
    [
        (values(), ROUTE, None),
        (values(query="a=1&apikey=[REDACTED]"), ROUTE, None),
        (values(host="[::1]:8000"), {}, None),
        (values(host="[::1"), {}, None),
        (values(host="plain"), ROUTE, None),
        (values(host=""), ROUTE, None),
        (values(user_agent="agent \xe9\u2603", consumer_id="c-9"), ROUTE, None),
        (values(status=0, user_agent=None), ROUTE, None),
        (values(status=503), ROUTE, None),
        (values(status=503), ROUTE, {"error.type": "timeout"}),
        (values(status=-1), ROUTE, None),
        (values(total_ms=0.0005, upstream_ms=0.0015), ROUTE, None),
        (values(total_ms=1.0, upstream_ms=2.5), ROUTE, None),
        (values(client_port=2**63 - 1, response_body_size=2**40), ROUTE, None),
        (values(path="/caf\xe9", method="PROPFIND"), ROUTE, {"gateway.plugin.note": 1}),
        # set before: a standard key gives way, error.type and unrelated keys stay
        (
            values(),
            ROUTE,
            {"url.full": "x", "http.route": "y", "url.query": "kept", "error.type": "e"},
        ),
        (values(query="q=1", consumer_id="c"), ROUTE, {"url.query": "z", "gateway.consumer.id": 1}),
    ],
)
def test_c_and_python_write_the_same_root(
    request_values: tuple[Any, ...], route: dict[str, Any], extras: dict[str, Any] | None
) -> None:
    fast, reference = _both(request_values, route, extras)
    assert fast.status_code == reference.status_code
    assert fast.end_ns == reference.end_ns == 5_000
    assert not reference.encoded_attributes  # the reference writes its dict


def test_a_5xx_is_an_error_with_the_status_as_its_type() -> None:
    fast, _ = _both(values(status=502), ROUTE)
    assert fast.status_code == STATUS_ERROR
    assert b"error.type" in fast.encoded_attributes
    assert b"502" in fast.encoded_attributes
    kept, _ = _both(values(status=502), ROUTE, {"error.type": "connection_refused"})
    assert kept.attributes == {"error.type": "connection_refused"}
    assert b"error.type" not in kept.encoded_attributes
    ok, _ = _both(values(status=404), ROUTE)
    assert ok.status_code == STATUS_UNSET


def test_an_ended_root_keeps_its_end() -> None:
    span = _root()
    span.end(3_000)
    write_root(span, 9_000, values(), ROUTE, b"")
    assert span.end_ns == 3_000


@pytest.mark.parametrize(
    "odd",
    [
        values(client_port=True),  # a bool is written as a bool
        values(total_ms=1),  # an int latency
        values(total_ms=float("inf")),  # Python raises for these itself
        values(upstream_ms=1e300),
        values(client_port=2**64),
        values(method=b"GET"),
    ],
)
def test_values_the_c_writer_leaves_to_python(odd: tuple[Any, ...]) -> None:
    span = _root({"x": 1})
    seen: list[tuple[Any, ...]] = []

    def refused(root: Span, *args: Any) -> None:
        seen.append((dict(root.attributes), root.encoded_attributes, root.end_ns, args))

    set_fallback("write_root", refused)
    try:
        c_write_root(span, 5_000, odd, ROUTE, b"")
    finally:
        set_fallback("write_root", python_write_root)
    # handed over as given, nothing written before the refusal
    assert seen == [({"x": 1}, b"", 0, (5_000, odd, ROUTE, b""))]
    set_fallback("write_root", None)
    try:
        with pytest.raises((TypeError, ValueError, OverflowError)):
            c_write_root(span, 5_000, odd, ROUTE)
    finally:
        set_fallback("write_root", python_write_root)
    reference = _root({"x": 1})
    try:
        python_write_root(reference, 5_000, odd, ROUTE)
    except (TypeError, ValueError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            write_root(span, 5_000, odd, ROUTE, b"")
    else:
        write_root(span, 5_000, odd, ROUTE, b"")  # falls back to Python
        assert _decoded(span) == _decoded(reference)


def test_the_node_writes_roots_in_c() -> None:
    assert write_root is c_write_root
    assert root_module.write_root is c_write_root


def test_without_the_extension_python_writes_it() -> None:
    span = _root()
    python_write_root(span, 5_000, values(), ROUTE, wire.span_attribute_fields(ROUTE))
    assert span.encoded_attributes == b""
    assert span.attributes["url.full"] == "http://shop.example:8000/orders/7"
    assert span.attributes["server.address"] == "shop.example"
    assert span.attributes["gateway.latency.gateway_ms"] == 0.247


TEXT = st.text(max_size=30)
OPTIONAL = st.none() | TEXT
INT64 = st.integers(-(2**63), 2**63 - 1)
MS = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(
    strings=st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT),
    numbers=st.tuples(INT64, INT64, INT64, INT64, st.integers(-1000, 1000)),
    latencies=st.tuples(MS, MS),
    optional=st.tuples(OPTIONAL, OPTIONAL),
    route=st.dictionaries(st.sampled_from([*ROUTE, "extra"]), TEXT, max_size=4),
    extras=st.dictionaries(
        st.sampled_from(["url.full", "url.query", "error.type", "http.route", "a", "client.port"]),
        TEXT | INT64,
        max_size=4,
    ),
)
def test_any_request_is_written_alike(
    strings: tuple[str, ...],
    numbers: tuple[int, ...],
    latencies: tuple[float, float],
    optional: tuple[str | None, str | None],
    route: dict[str, Any],
    extras: dict[str, Any],
) -> None:
    method, scheme, host, path, query, client, request_id = strings
    client_port, server_port, request_size, response_size, status = numbers
    request = (
        method,
        scheme,
        host,
        path,
        query,
        client,
        client_port,
        server_port,
        request_size,
        response_size,
        request_id,
        *latencies,
        status,
        *optional,
    )
    _both(request, route, extras)


def test_a_route_value_that_changes_the_root_while_written_is_safe() -> None:
    """Encoding a route value runs its ``__str__``: if that replaces the root's attributes or
    deletes its encoded ones, the writer must not touch freed objects."""
    root = _root({"note": "x"})

    class Meddling:
        def __str__(self) -> str:
            root.attributes = {"other": 1}
            del root.encoded_attributes
            return "meddled"

    c_write_root(root, 5_000, values(), {"gateway.route.name": Meddling()})
    assert b"meddled" in root.encoded_attributes
    assert root.attributes == {"other": 1}
