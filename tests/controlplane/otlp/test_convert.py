"""OTLP spans to ``spans`` rows: the attributes' JSON text, whichever path builds it."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from controlplane.otlp.codec import to_any_value
from controlplane.otlp.convert import (
    GATEWAY_SERVICE_NAME,
    SPAN_COLUMNS,
    attributes_dict,
    attributes_json,
    span_rows,
)

ATTRIBUTES = SPAN_COLUMNS.index("attributes")


def _kvs(attributes: dict[str, Any]) -> list[common_pb2.KeyValue]:
    """Attributes as OTLP KeyValues; bytes (not a stored JSON value) as ``bytes_value``."""
    return [
        common_pb2.KeyValue(
            key=k,
            value=common_pb2.AnyValue(bytes_value=v) if isinstance(v, bytes) else to_any_value(v),
        )
        for k, v in attributes.items()
    ]


def _rows(service: str, attributes: dict[str, Any]) -> tuple[str, trace_pb2.Span, int]:
    span = trace_pb2.Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="GET /orders",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        attributes=_kvs(attributes),
    )
    resource = resource_pb2.Resource(attributes=_kvs({"service.name": service}))
    converted = span_rows(
        [
            trace_pb2.ResourceSpans(
                resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=[span])]
            )
        ]
    )
    return converted.rows[0][ATTRIBUTES], span, len(converted.roots)


VALUES = {
    "http.request.method": "GET",
    "url.full": 'http://h/a?q="x"&é',
    "client.port": 5555,
    "big": -(2**63),
    "ok": True,
    "gateway.latency.total_ms": 1.25,
    "nan": float("nan"),
    "list": ["a", 1, False],
    "nested": {"k": "v", "n": 2},
    "raw": b"\x00\xff",
}


def test_a_request_roots_text_is_the_one_attributes_json_writes() -> None:
    text, span, roots = _rows(GATEWAY_SERVICE_NAME, VALUES)
    assert roots == 1  # built from the dict the trace row needs
    assert text == attributes_json(span.attributes)
    assert json.loads(text) == attributes_dict(span.attributes)
    assert json.loads(text)["nan"] is None


def test_a_nul_in_a_roots_attribute_is_replaced_as_on_every_span() -> None:
    text, span, _ = _rows(GATEWAY_SERVICE_NAME, {"user_agent.original": "a\x00b"})
    assert "\\u0000" not in text  # PostgreSQL's JSON types refuse it
    assert json.loads(text) == {"user_agent.original": "a\ufffdb"}
    assert text == attributes_json(span.attributes)


def test_other_services_spans_are_not_request_roots() -> None:
    text, span, roots = _rows("orders-service", VALUES)
    assert roots == 0
    assert text == attributes_json(span.attributes)
