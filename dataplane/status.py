"""The node's status listener: ``/status`` (JSON) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from dataplane.node import Node

__all__ = ["status_app"]


def status_app(node: Node) -> Starlette:
    """A small app over ``node``'s state."""

    async def status(_request: Request) -> JSONResponse:
        return JSONResponse(node.status())

    async def metrics(_request: Request) -> PlainTextResponse:
        lines = [
            "# TYPE activetrace_dp_requests_total counter",
            f"activetrace_dp_requests_total {node.proxy.requests}",
            "# TYPE activetrace_dp_traced_requests_total counter",
            f"activetrace_dp_traced_requests_total {node.tracer.traced}",
            "# TYPE activetrace_dp_spans_queued gauge",
            f"activetrace_dp_spans_queued {node.export.queued}",
            "# TYPE activetrace_dp_spans_dropped_total counter",
            f"activetrace_dp_spans_dropped_total {node.export.dropped}",
            "# TYPE activetrace_dp_config_version gauge",
            f"activetrace_dp_config_version {node.config_version}",
        ]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/status", status), Route("/metrics", metrics)])
