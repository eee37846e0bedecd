"""OpenTelemetry SDK instrumentation of the demo upstream (what a real service behind the
gateway does): continue the incoming ``traceparent``, record SERVER spans, export via OTLP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["TracingMiddleware", "tracer_provider"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def tracer_provider(endpoint: str, service_name: str = "demo-upstream") -> TracerProvider:
    """A provider exporting to ``endpoint`` (OTLP/gRPC) in batches."""
    provider = TracerProvider(resource=Resource({"service.name": service_name}))
    insecure = endpoint.startswith("http://")
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=insecure), schedule_delay_millis=200
        )
    )
    return provider


class TracingMiddleware:
    """One SERVER span per request, child of the gateway's ``gateway.upstream`` span."""

    def __init__(self, app: ASGIApp, provider: TracerProvider) -> None:
        self.app = app
        self.tracer = provider.get_tracer("activetrace.demo-upstream")

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        context = propagate.extract(carrier)
        method, path = scope["method"], scope["path"]
        status = 500
        with self.tracer.start_as_current_span(
            f"{method} {path}",
            context=context,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "url.scheme": "http"},
        ) as span:

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                await send(message)

            if path.startswith("/demo/orders"):
                with self.tracer.start_as_current_span(
                    "SELECT orders", kind=SpanKind.CLIENT
                ) as db_span:
                    db_span.set_attribute("db.system.name", "sqlite")
                    db_span.set_attribute("db.query.text", "SELECT * FROM orders")
                    await asyncio.sleep(0.0005)  # the demo's pretend database round trip
            await self.app(scope, receive, send_wrapper)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
