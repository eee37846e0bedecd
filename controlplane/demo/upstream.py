"""The demo upstream: fixed, slow, erroring, streaming and echo endpoints under ``/demo``."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

__all__ = ["create_app"]

ORDERS = [{"id": i, "item": item, "qty": i} for i, item in enumerate(("book", "pen", "lamp"), 1)]


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        value = default
    return max(low, min(high, value))


async def hello(_request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello from the demo upstream"})


async def slow(request: Request) -> JSONResponse:
    ms = _int(request, "ms", 200, 0, 60_000)
    await asyncio.sleep(ms / 1000)
    return JSONResponse({"slept_ms": ms})


async def status(request: Request) -> Response:
    code = int(request.path_params["code"])
    if not 200 <= code <= 599:
        return JSONResponse({"message": "status must be 200..599"}, status_code=400)
    return JSONResponse({"status": code}, status_code=code)


async def flaky(request: Request) -> JSONResponse:
    percent = _int(request, "fail_percent", 30, 0, 100)
    if random.randrange(100) < percent:
        return JSONResponse({"message": "flaky failure"}, status_code=503)
    return JSONResponse({"message": "ok"})


async def stream(request: Request) -> StreamingResponse:
    chunks = _int(request, "chunks", 5, 1, 1000)
    interval = _int(request, "interval_ms", 100, 0, 10_000)

    async def body() -> AsyncIterator[bytes]:
        for index in range(chunks):
            yield f"chunk {index}\n".encode()
            await asyncio.sleep(interval / 1000)

    return StreamingResponse(body(), media_type="text/plain")


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": body.decode("utf-8", "replace"),
        }
    )


async def orders(request: Request) -> JSONResponse:
    if request.method == "POST":
        payload = json.loads(await request.body() or b"{}")
        return JSONResponse({"id": len(ORDERS) + 1, **payload}, status_code=201)
    return JSONResponse({"orders": ORDERS})


async def order(request: Request) -> JSONResponse:
    order_id = int(request.path_params["order_id"])
    for item in ORDERS:
        if item["id"] == order_id:
            return JSONResponse(item)
    return JSONResponse({"message": "no such order"}, status_code=404)


async def redirect(_request: Request) -> RedirectResponse:
    return RedirectResponse("/demo/hello", status_code=302)


async def health(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app() -> Starlette:
    """The demo upstream application."""
    return Starlette(
        routes=[
            Route("/demo/hello", hello),
            Route("/demo/slow", slow),
            Route("/demo/status/{code:int}", status),
            Route("/demo/flaky", flaky),
            Route("/demo/stream", stream),
            Route("/demo/echo", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/demo/orders", orders, methods=["GET", "POST"]),
            Route("/demo/orders/{order_id:int}", order),
            Route("/demo/redirect", redirect),
            Route("/healthz", health),
        ]
    )
