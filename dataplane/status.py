"""The node's status listener: ``/status`` (JSON) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dataplane.metrics import render

if TYPE_CHECKING:
    from dataplane.node import Node

__all__ = ["status_app"]


def status_app(node: Node) -> Starlette:
    """A small app over ``node``'s state."""

    async def status(_request: Request) -> JSONResponse:
        return JSONResponse(node.status())

    async def metrics(_request: Request) -> Response:
        return Response(render(node), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/status", status), Route("/metrics", metrics)])
