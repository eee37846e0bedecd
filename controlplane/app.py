"""The FastAPI application: API routes, error rendering, health."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane.api.auth import require_admin
from controlplane.api.routes import (
    config,
    consumers,
    expressions,
    gateway_routes,
    nodes,
    otlp_export,
    otlp_receiver,
    plugins,
    services,
    sessions,
    traces,
    upstreams,
    viewer,
)
from controlplane.db.models import TracingSessionRow
from controlplane.errors import ApiError
from controlplane.schemas import ErrorBody, ErrorDetail
from controlplane.state import ControlPlane

__all__ = ["create_app"]

VERSION = "0.1.0"


def create_app(cp: ControlPlane) -> FastAPI:
    """Build the API application around a ControlPlane."""
    app = FastAPI(
        title="activetrace control plane",
        version=VERSION,
        description="Gateway configuration, data plane nodes and on-demand tracing sessions.",
        docs_url=None,  # served below from the installed swagger-ui-bundle, not a CDN
        redoc_url=None,
    )
    _install_api_docs(app)
    app.state.control_plane = cp
    protected = [Depends(require_admin)]
    for module in (nodes, sessions, traces, expressions, config, otlp_export):
        app.include_router(module.router, dependencies=protected)
    for module in (services, gateway_routes, upstreams, plugins, consumers):
        app.include_router(module.router, dependencies=protected)
    # Services behind the gateway export here with their own OTLP exporters: no admin token.
    app.include_router(otlp_receiver.router)
    app.include_router(viewer.router)  # public pages; the API calls they make carry the token
    _install_error_handlers(app)

    @app.get("/healthz", tags=["health"], responses={503: {"model": ErrorBody}})
    async def healthz() -> JSONResponse:
        """Healthy when the database answers."""
        if not cp.ready.is_set():
            body = ErrorBody(message="starting: waiting for the database to be reachable")
            return JSONResponse(body.model_dump(), status_code=503)
        try:
            async with cp.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means unhealthy, never a crash
            body = ErrorBody(message=f"database unavailable: {type(exc).__name__}")
            return JSONResponse(body.model_dump(), status_code=503)
        return JSONResponse({"status": "ok", "nodes_connected": len(cp.registry.connected())})

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics of this control plane."""
        cp.metrics.nodes_connected.set(len(cp.registry.connected()))
        try:
            async with cp.db.session() as db:
                counts = dict(
                    (
                        await db.execute(
                            select(TracingSessionRow.status, func.count()).group_by(
                                TracingSessionRow.status
                            )
                        )
                    ).all()
                )
            for status in ("pending", "active", "completed", "stopped", "expired"):
                cp.metrics.sessions.labels(status).set(counts.get(status, 0))
        except Exception:  # metrics must answer even when the database does not
            cp.metrics.db_errors.labels("metrics").inc()
        return Response(generate_latest(cp.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _error(
    status: int,
    message: str,
    errors: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(message=message, errors=errors or [])
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _validation_message(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"malformed JSON: {error.get('ctx', {}).get('error', 'cannot parse body')}"
    return str(error["msg"])


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status_code, exc.message, exc.errors, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            ErrorDetail(loc=list(e.get("loc", ())), message=_validation_message(e))
            for e in exc.errors()
        ]
        first = errors[0] if errors else ErrorDetail(loc=[], message="invalid request")
        where = ".".join(str(part) for part in first.loc)
        return _error(422, f"{where}: {first.message}" if where else first.message, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))


def _install_api_docs(app: FastAPI) -> None:
    """Interactive API docs at ``/docs`` that work without internet access."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="activetrace control plane API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )
