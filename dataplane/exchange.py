"""One request as it goes through the gateway: what plugins read and change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

from dataplane.headers import HeaderList
from dataplane.tracing.spans import KIND_CLIENT, Span
from dataplane.tracing.tracer import ALWAYS_REDACTED, REDACTED

if TYPE_CHECKING:
    from dataplane.gateway_config import Consumer, Route, Service
    from dataplane.tracing.recorder import RequestTrace

__all__ = ["REDACTED", "Exchange", "add_value", "form_pairs"]


class Exchange:
    """The request, the response once there is one, and per-request plugin state."""

    __slots__ = (
        "balancer_span",
        "client_ip",
        "client_port",
        "client_query",
        "consumer",
        "credential_id",
        "current_span",
        "host",
        "method",
        "path",
        "plugin_data",
        "query_string",
        "redact",
        "request_body",
        "request_body_limit",
        "request_body_size",
        "request_headers",
        "request_id",
        "response_body_size",
        "response_headers",
        "response_source",
        "response_status",
        "route",
        "scheme",
        "server_port",
        "service",
        "started_ns",
        "total_ms",
        "trace",
        "upstream_ms",
        "upstream_path",
        "upstream_span",
        "upstream_started",
    )

    def __init__(
        self,
        *,
        request_id: str,
        method: str,
        scheme: str,
        host: str,
        path: str,
        query_string: bytes,
        request_headers: HeaderList,
        client_ip: str,
        client_port: int,
        server_port: int,
        started_ns: int,
    ) -> None:
        self.request_id = request_id
        self.method = method
        self.scheme = scheme
        self.host = host
        self.path = path
        self.query_string = query_string
        self.client_query = query_string  # as the client sent it (plugins may rewrite the other)
        self.request_headers = request_headers
        self.client_ip = client_ip
        self.client_port = client_port
        self.server_port = server_port
        self.started_ns = started_ns
        self.route: Route | None = None
        self.service: Service | None = None
        self.consumer: Consumer | None = None
        self.credential_id: str | None = None  # the credential an auth plugin accepted
        self.upstream_path = path
        self.request_body: bytes | None = None
        self.request_body_size = 0
        # Set by request-size-limiting: a streamed (chunked) body must not grow past this.
        self.request_body_limit: int | None = None
        self.response_status = 0
        self.response_headers = HeaderList()
        self.response_body_size = 0
        self.response_source = "gateway"
        self.upstream_ms: float | None = None
        self.upstream_started: int | None = None  # perf_counter_ns of the first try
        self.total_ms: float | None = None  # first byte in to last byte out
        self.plugin_data: dict[str, Any] = {}
        # Header and query names whose values traces must never show (e.g. key-auth's key).
        self.redact: set[str] = set()
        self.trace: RequestTrace | None = None
        self.current_span: Span | None = None
        self.balancer_span: Span | None = None
        self.upstream_span: Span | None = None

    def io_span(self, name: str, attributes: dict[str, Any]) -> Span | None:
        """Start a CLIENT span for a call a plugin makes (only when the request is traced).

        End it with ``span.end()``; mark failures with ``span.set_error(...)``.
        """
        trace = self.trace
        if trace is None:
            return None
        parent = self.current_span or trace.root
        return trace.span(name, parent, None, KIND_CLIENT, attributes)

    def query_args(self) -> list[tuple[str, str]]:
        """The query string as decoded ``(name, value)`` pairs, in order."""
        return form_pairs(self.query_string)

    def set_query_args(self, args: list[tuple[str, str]]) -> None:
        """Replace the query string sent upstream."""
        self.query_string = "&".join(
            f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in args
        ).encode("latin-1")

    def redacted_query(self, query: bytes | None = None) -> str:
        """``query`` (default: the request's) with values of names in ``redact`` hidden.

        For ``url.full`` / ``url.query`` and logs: a key-auth key in the query never shows.
        """
        text = (self.query_string if query is None else query).decode("latin-1")
        if not self.redact or not text:
            return text
        parts = []
        for part in text.split("&"):
            name, sep, _ = part.partition("=")
            if sep and unquote(name.replace("+", " ")) in self.redact:
                part = f"{name}={REDACTED}"
            parts.append(part)
        return "&".join(parts)

    def header_map(self, headers: HeaderList) -> dict[str, str | list[str]]:
        """Headers as logs show them (Kong's shape: a repeated header is a list), secrets
        (``Authorization``, cookies, names in ``redact``) replaced by ``[REDACTED]``."""
        out: dict[str, str | list[str]] = {}
        for name, value in headers.items():
            hidden = name in ALWAYS_REDACTED or name in self.redact
            add_value(out, name, REDACTED if hidden else value)
        return out

    def query_map(self) -> dict[str, str | list[str]]:
        """The query arguments in the same shape, names in ``redact`` hidden."""
        out: dict[str, str | list[str]] = {}
        for name, value in self.query_args():
            add_value(out, name, REDACTED if name in self.redact else value)
        return out


def form_pairs(data: bytes) -> list[tuple[str, str]]:
    """A query string or form body as decoded ``(name, value)`` pairs, in order (blank values
    kept)."""
    if not data:
        return []
    return parse_qsl(data.decode("latin-1"), keep_blank_values=True)


def add_value(into: dict[str, Any], name: str, value: Any) -> None:
    """Kong's multi-valued shape: a name's second value turns it into a list of its values."""
    current = into.get(name)
    if current is None:
        into[name] = value
    elif isinstance(current, list):
        current.append(value)
    else:
        into[name] = [current, value]
