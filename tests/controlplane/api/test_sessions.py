"""``/api/v1/tracing-sessions``: validation errors name the field; nothing bad is stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from controlplane.state import ControlPlane
from tests.controlplane.conftest import FakeClock

GOOD: dict[str, Any] = {
    "name": "checkout",
    "targets": ["dp-1"],
    "scope": {"route": "orders"},
    "sampling_rule": 'http.method == "POST"',
    "max_samples": 10,
    "duration_secs": 60,
}


async def _count(api: httpx.AsyncClient) -> int:
    response = await api.get("/api/v1/tracing-sessions")
    return len(response.json()["items"])


async def test_create_returns_the_session(api: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await api.post("/api/v1/tracing-sessions", json=GOOD)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["scope"]["kind"] == "route"
    assert body["scope"]["name"] == "orders"
    assert body["tail"] is False
    assert body["targets"] == [{"node_id": "dp-1", "state": "pending", "samples": 0, "message": ""}]
    created = clock.now()
    assert body["created_at"] == created.isoformat().replace("+00:00", "Z")
    assert body["ends_at"] == (created + timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    assert body["expires_at"] == (created + timedelta(days=7)).isoformat().replace("+00:00", "Z")


async def test_tail_rule_is_flagged(api: httpx.AsyncClient) -> None:
    body = {**GOOD, "sampling_rule": "http.response.status >= 500"}
    response = await api.post("/api/v1/tracing-sessions", json=body)
    assert response.status_code == 201
    assert response.json()["tail"] is True


@pytest.mark.parametrize(
    ("change", "loc", "fragment"),
    [
        ({"targets": ["dp-9"]}, ["body", "targets", 0], "unknown node 'dp-9'"),
        ({"targets": []}, ["body", "targets"], "at least 1"),
        ({"targets": ["dp-1", "dp-1"]}, ["body", "targets"], "repeat"),
        ({"scope": {"route": "nope"}}, ["body", "scope", "route"], "unknown route 'nope'"),
        ({"scope": {"service": "nope"}}, ["body", "scope", "service"], "unknown service 'nope'"),
        ({"scope": {"service": "demo", "route": "orders"}}, ["body", "scope"], "not both"),
        ({"max_samples": 0}, ["body", "max_samples"], "greater than or equal to 1"),
        ({"max_samples": 10001}, ["body", "max_samples"], "less than or equal to 10000"),
        ({"duration_secs": 86401}, ["body", "duration_secs"], "less than or equal to 86400"),
        ({"capture": ["cookies"]}, ["body", "capture", 0], "'headers' or 'body'"),
        ({"colour": "red"}, ["body", "colour"], "Extra inputs"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    api: httpx.AsyncClient, change: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    response = await api.post("/api/v1/tracing-sessions", json={**GOOD, **change})
    assert response.status_code == 422, response.text
    body = response.json()
    assert fragment in body["message"]
    assert body["errors"][0]["loc"] == loc
    assert await _count(api) == 0


async def test_invalid_rule_reports_its_position(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/tracing-sessions", json={**GOOD, "sampling_rule": 'http.metod == "GET"'}
    )
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["loc"] == ["body", "sampling_rule"]
    assert "did you mean 'http.method'" in error["message"]
    assert (error["start"], error["end"]) == (0, 10)
    assert await _count(api) == 0


async def test_malformed_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/tracing-sessions",
        content=b'{"targets": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "malformed JSON" in response.json()["message"]
    assert await _count(api) == 0


async def test_unknown_session_is_404(api: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/api/v1/tracing-sessions/nope"),
        ("POST", "/api/v1/tracing-sessions/nope/stop"),
        ("DELETE", "/api/v1/tracing-sessions/nope"),
        ("GET", "/api/v1/tracing-sessions/nope/traces"),
    ):
        response = await api.request(method, path)
        assert response.status_code == 404, (method, path)
        assert "not found" in response.json()["message"]


async def test_list_filters_and_paginates(api: httpx.AsyncClient, clock: FakeClock) -> None:
    ids = []
    for index in range(5):
        clock.current += timedelta(seconds=1)
        targets = ["dp-1"] if index % 2 else ["dp-2"]
        response = await api.post("/api/v1/tracing-sessions", json={**GOOD, "targets": targets})
        ids.append(response.json()["id"])
    first = (await api.get("/api/v1/tracing-sessions", params={"limit": 2})).json()
    assert [s["id"] for s in first["items"]] == ids[::-1][:2]
    second = (
        await api.get(
            "/api/v1/tracing-sessions", params={"limit": 2, "after": first["next_cursor"]}
        )
    ).json()
    assert [s["id"] for s in second["items"]] == ids[::-1][2:4]
    on_dp1 = (await api.get("/api/v1/tracing-sessions", params={"node_id": "dp-1"})).json()
    assert {s["id"] for s in on_dp1["items"]} == {ids[1], ids[3]}
    bad = await api.get("/api/v1/tracing-sessions", params={"after": "!!"})
    assert bad.status_code == 422


async def test_stop_is_idempotent(api: httpx.AsyncClient, control_plane: ControlPlane) -> None:
    created = (await api.post("/api/v1/tracing-sessions", json=GOOD)).json()
    first = (await api.post(f"/api/v1/tracing-sessions/{created['id']}/stop")).json()
    second = (await api.post(f"/api/v1/tracing-sessions/{created['id']}/stop")).json()
    assert first["status"] == second["status"] == "stopped"
    assert first["ended_at"] == second["ended_at"]
