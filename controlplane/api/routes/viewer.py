"""The built-in trace viewer: its static pages (no token needed) and the data only it uses.

The pages are public so a browser can load them; every API call they make carries the admin
token the user typed, so nothing behind ``/api/v1`` is exposed by serving them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from controlplane.api.auth import require_admin
from controlplane.api.deps import DbSession
from controlplane.errors import NotFound
from controlplane.schemas import ErrorBody
from controlplane.viewer import STATIC_DIR
from controlplane.viewer.models import LatencyHistogram, latency_histogram
from controlplane.viewer.queries import session_latencies

__all__ = ["SECURITY_HEADERS", "router"]

router = APIRouter(tags=["viewer"])

# Scripts and styles only from our own files: captured content can never run as code.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _assets(root: Path) -> dict[str, Path]:
    """Every servable file by its path under ``root``: requests can only name these."""
    return {
        path.relative_to(root).as_posix(): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in _MEDIA_TYPES
    }


_ASSETS = _assets(STATIC_DIR)


def _file(name: str) -> FileResponse:
    path = _ASSETS.get(name)
    if path is None:
        raise NotFound(f"no viewer file {name!r}")
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The viewer's single page (it routes with the URL fragment)."""
    return _file("index.html")


@router.get("/ui/{name:path}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """A script, style sheet or icon of the viewer."""
    return _file(name)


@router.get(
    "/api/v1/tracing-sessions/{session_id}/latency",
    response_model=LatencyHistogram,
    responses={404: {"model": ErrorBody}},
    dependencies=[Depends(require_admin)],
    tags=["tracing sessions"],
)
async def session_latency(db: DbSession, session_id: str) -> LatencyHistogram:
    """The latency distribution of the session's traces (the viewer's histogram)."""
    return latency_histogram(await session_latencies(db, session_id))
