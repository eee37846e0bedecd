"""The root span's standard attributes, written once when the request is over.

``write_root(root, end_ns, values, route_attributes, route_encoded)`` takes the request's values
as one tuple in :data:`ROOT_FIELDS` order and the route's attributes (its own keys:
``http.route``, ``gateway.route.*``, ``gateway.service.*``, never one written here), also as
encoded fields (``wire.span_attribute_fields`` of the same dict, made once per config; the C
writer copies them instead of encoding the dict again). ``write_root`` is the C extension's
writer when it is built, which writes them straight into the root's ``encoded_attributes``
(already-encoded OTLP fields) and hands a value it leaves to Python (a non-``str`` string, an
``int`` subclass, a latency that is not a finite float) to :func:`python_write_root`, which puts
them into the root's attribute dict (and is ``write_root`` without the extension). Both give the
same attributes: tests decode both encodings and compare them.

Attributes set on the root before (by plugins, failures) stay, except under a key written here,
which wins as it would in a dict merge; ``error.type`` is written (for a 5xx) only when none was
set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from dataplane.headers import host_without_port
from dataplane.tracing.spans import STATUS_ERROR, Span

__all__ = ["ROOT_FIELDS", "ms3", "python_write_root", "write_root"]

ROOT_FIELDS: Final = (
    "method",
    "scheme",
    "host",
    "path",
    "query",
    "client_address",
    "client_port",
    "server_port",
    "request_body_size",
    "response_body_size",
    "request_id",
    "total_ms",
    "upstream_ms",
    "status",
    "user_agent",
    "consumer_id",
)
"""The order of ``values``: str, str, str (Host as sent), str, str (redacted query or ""), str,
int, int, int, int, str, float, float, int (0: no response), str | None, str | None."""

RootValues = tuple[
    str, str, str, str, str, str, int, int, int, int, str, float, float, int, str | None, str | None
]

WriteRoot = Callable[[Span, int, RootValues, Mapping[str, Any], bytes], None]
"""``write_root(root, end_ns, values, route_attributes, route_encoded)``"""


def ms3(value: float) -> float:
    """Milliseconds to three decimals: ``round(value, 3)`` but for halfway ties, at a quarter
    of its cost (round with digits formats the float; this is one multiply and a truncation)."""
    return int(value * 1000.0 + (0.5 if value >= 0 else -0.5)) / 1000.0


def python_write_root(
    root: Span,
    end_ns: int,
    values: RootValues,
    route_attributes: Mapping[str, Any],
    route_encoded: bytes = b"",
) -> None:
    """Write the root's standard attributes, mark a 5xx an error and end it at ``end_ns``
    (unless it ended already): :data:`write_root` in Python, into the root's attribute dict
    (``route_encoded`` is not needed here), the reference."""
    (
        method,
        scheme,
        host,
        path,
        query,
        client_address,
        client_port,
        server_port,
        request_body_size,
        response_body_size,
        request_id,
        total_ms,
        upstream_ms,
        status,
        user_agent,
        consumer_id,
    ) = values
    url = f"{scheme}://{host}{path}"
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.full": f"{url}?{query}" if query else url,
        "url.path": path,
        "url.scheme": scheme,
        "client.address": client_address,
        "client.port": client_port,
        "server.address": host_without_port(host),
        "server.port": server_port,
        "network.protocol.version": "1.1",
        "http.request.body.size": request_body_size,
        "http.response.body.size": response_body_size,
        "gateway.request.id": request_id,
        "gateway.latency.total_ms": ms3(total_ms),
        "gateway.latency.upstream_ms": ms3(upstream_ms),
        "gateway.latency.gateway_ms": ms3(total_ms - upstream_ms),
        **route_attributes,
    }
    if root.attributes:
        attributes = {**root.attributes, **attributes}
    root.attributes = attributes
    if status:
        attributes["http.response.status_code"] = status
    if query:
        attributes["url.query"] = query
    if user_agent is not None:
        attributes["user_agent.original"] = user_agent
    if consumer_id is not None:
        attributes["gateway.consumer.id"] = consumer_id
    if status >= 500:
        root.status_code = STATUS_ERROR
        attributes.setdefault("error.type", str(status))
    root.end(end_ns)


write_root: WriteRoot = python_write_root
if not TYPE_CHECKING:
    try:  # built: C writes the root, and leaves what it refuses to Python
        from dataplane.tracing._wire import set_fallback, write_root
    except ImportError:  # not built
        pass
    else:
        set_fallback("write_root", python_write_root)
