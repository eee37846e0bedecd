"""The viewer's routes: public static pages, and the latency histogram behind the token."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from controlplane.api.routes.viewer import SECURITY_HEADERS
from controlplane.db.models import TraceRow
from controlplane.state import ControlPlane
from controlplane.viewer import STATIC_DIR


async def test_index_and_assets_are_public_with_a_strict_policy(
    api: httpx.AsyncClient, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control_plane.settings, "admin_token", SecretStr("s3cret"))
    index = await api.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/ui/js/app.js">' in index.text
    for header, value in SECURITY_HEADERS.items():
        assert index.headers[header] == value
    for path, media_type in (
        ("/ui/js/app.js", "text/javascript; charset=utf-8"),
        ("/ui/css/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ):
        asset = await api.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["content-type"] == media_type
        assert asset.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path", ["/ui/nope.js", "/ui/../viewer/models.py", "/ui/%2e%2e/models.py", "/ui/"]
)
async def test_only_the_viewer_files_are_served(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path)
    assert response.status_code == 404
    assert "message" in response.json()


def test_the_scripts_never_parse_html() -> None:
    for script in STATIC_DIR.rglob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (script.name, sink)


async def _session_with_traces(
    api: httpx.AsyncClient, control_plane: ControlPlane, durations: list[tuple[float, int | None]]
) -> str:
    created = await api.post("/api/v1/tracing-sessions", json={"targets": ["dp-1"]})
    session_id: str = created.json()["id"]
    async with control_plane.db.session() as db:
        db.add_all(
            TraceRow(
                session_id=session_id,
                trace_id=f"{index:032x}",
                node_id="dp-1",
                start_time_ns=index,
                duration_ms=duration,
                method="GET",
                path="/demo",
                status_code=status,
                span_count=1,
                error=status is None or status >= 500,
            )
            for index, (duration, status) in enumerate(durations)
        )
        await db.commit()
    return session_id


async def test_latency_histogram_of_a_session(
    api: httpx.AsyncClient, control_plane: ControlPlane
) -> None:
    session_id = await _session_with_traces(
        api, control_plane, [(4.0, 200), (9.5, 200), (21.0, 404), (58.0, 503), (3.0, None)]
    )
    response = await api.get(f"/api/v1/tracing-sessions/{session_id}/latency")
    assert response.status_code == 200, response.text
    histogram = response.json()
    assert histogram["count"] == 5
    assert histogram["max_ms"] == 58.0
    assert histogram["p50_ms"] == 9.5
    buckets = histogram["buckets"]
    assert buckets[0] == {
        "low_ms": 0.0,
        "high_ms": 2.0,
        "ok": 0,
        "client_error": 0,
        "server_error": 0,
    }
    assert sum(b["ok"] for b in buckets) == 2
    assert sum(b["client_error"] for b in buckets) == 1
    assert sum(b["server_error"] for b in buckets) == 2
    assert buckets[-1]["high_ms"] == 58.0


async def test_latency_histogram_needs_the_token_and_a_session(
    api: httpx.AsyncClient, control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = await _session_with_traces(api, control_plane, [])
    assert (await api.get(f"/api/v1/tracing-sessions/{empty}/latency")).json()["count"] == 0
    missing = await api.get("/api/v1/tracing-sessions/nope/latency")
    assert missing.status_code == 404
    assert missing.json()["message"] == "tracing session 'nope' not found"
    monkeypatch.setattr(control_plane.settings, "admin_token", SecretStr("s3cret"))
    assert (await api.get(f"/api/v1/tracing-sessions/{empty}/latency")).status_code == 401
    allowed = await api.get(
        f"/api/v1/tracing-sessions/{empty}/latency", headers={"authorization": "Bearer s3cret"}
    )
    assert allowed.status_code == 200
