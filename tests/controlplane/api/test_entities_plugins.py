"""``/api/v1/plugins`` and the plugins nested under services and routes.

A plugin defined here is added to the registry, so these tests do not depend on which built-in
plugins exist; its config schema is what the control plane validates against.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import Field

from dataplane.plugins import registry
from dataplane.plugins.base import GatewayPlugin, PluginConfig

DEMO_ID = "43e4a642-1e68-5fa3-9234-90e65c7cd772"  # entity_id("service", "demo")


class Limits(PluginConfig):
    """A nested record of the test plugin's config."""

    minute: int | None = None
    hour: int | None = None


class GreetingConfig(PluginConfig):
    """Config of the test plugin."""

    status: int = Field(default=200, ge=100, le=599)
    greeting: str = "hello"
    headers: dict[str, str] = Field(default_factory=dict)
    limits: Limits = Limits()


class GreetingPlugin(GatewayPlugin[GreetingConfig]):
    """Answers every request itself (its handler never runs in these tests)."""

    name = "greeting"
    priority = 10
    config_model = GreetingConfig


@pytest.fixture(autouse=True)
def greeting_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``greeting`` a known plugin for the control plane's validation."""
    known = {**registry.plugin_classes(), "greeting": GreetingPlugin}
    monkeypatch.setattr(registry, "plugin_classes", lambda: known)


async def _version(api: httpx.AsyncClient) -> int:
    response = await api.get("/api/v1/config")
    return int(response.headers["x-config-version"])


async def _plugins(api: httpx.AsyncClient, path: str = "/api/v1/plugins") -> list[Any]:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    return [(p["name"], p["service"], p["route"]) for p in response.json()["data"]]


def _assert_invalid(response: httpx.Response, loc: list[Any], fragment: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["loc"] == loc, body
    assert fragment in body["message"], body


async def _route_id(api: httpx.AsyncClient, name: str) -> str:
    ident: str = (await api.get(f"/api/v1/routes/{name}")).json()["id"]
    return ident


async def test_global_plugin_round_trip(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/plugins", json={"name": "greeting", "tags": ["t"]})
    assert created.status_code == 201, created.text
    assert created.headers["x-config-version"] == "2"
    plugin = created.json()
    assert plugin | {"id": "x"} == {
        "id": "x",
        "name": "greeting",
        "enabled": True,
        "service": None,
        "route": None,
        "config": {
            "status": 200,
            "greeting": "hello",
            "headers": {},
            "limits": {"minute": None, "hour": None},
        },
        "tags": ["t"],
    }
    fetched = await api.get(f"/api/v1/plugins/{plugin['id']}")
    assert fetched.json() == plugin

    # PATCH merges config field by field, nested records too (Kong's records); maps are
    # values, replaced whole.
    patched = await api.patch(
        f"/api/v1/plugins/{plugin['id']}",
        json={
            "config": {"greeting": "hi", "headers": {"x-a": "1"}, "limits": {"minute": 5}},
            "enabled": False,
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    again = await api.patch(
        f"/api/v1/plugins/{plugin['id']}",
        json={"config": {"headers": {"x-b": "2"}, "limits": {"hour": 50}}},
    )
    assert again.json()["config"] == {
        "status": 200,
        "greeting": "hi",
        "headers": {"x-b": "2"},
        "limits": {"minute": 5, "hour": 50},
    }

    replaced = await api.put(
        f"/api/v1/plugins/{plugin['id']}", json={"name": "greeting", "config": {"status": 418}}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["config"]["status"] == 418
    assert replaced.json()["config"]["greeting"] == "hello"
    assert replaced.json()["enabled"] is True

    deleted = await api.delete(f"/api/v1/plugins/{plugin['id']}")
    assert deleted.status_code == 204
    assert deleted.headers["x-config-version"] == "6"
    assert await _plugins(api) == []


async def test_put_creates_a_plugin_with_the_id_in_the_url(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/plugins/greet-1", json={"name": "greeting"})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "greet-1"


@pytest.mark.parametrize(
    "reference",
    [{"service": {"name": "demo"}}, {"service": DEMO_ID}, {"service": {"id": DEMO_ID}}],
    ids=["by-name", "plain-id", "by-id"],
)
async def test_plugin_scoped_to_a_service(api: httpx.AsyncClient, reference: Any) -> None:
    created = await api.post("/api/v1/plugins", json={"name": "greeting", **reference})
    assert created.status_code == 201, created.text
    assert created.json()["service"] == {"id": DEMO_ID}
    assert await _plugins(api, "/api/v1/services/demo/plugins") == [
        ("greeting", {"id": DEMO_ID}, None)
    ]


async def test_nested_plugin_endpoints_bind_the_scope(api: httpx.AsyncClient) -> None:
    on_service = await api.post("/api/v1/services/demo/plugins", json={"name": "greeting"})
    assert on_service.status_code == 201, on_service.text
    on_route = await api.post(
        "/api/v1/routes/orders/plugins", json={"name": "greeting", "config": {"status": 201}}
    )
    assert on_route.status_code == 201, on_route.text
    orders = await _route_id(api, "orders")
    assert on_route.json()["route"] == {"id": orders}
    assert await _plugins(api, "/api/v1/routes/orders/plugins") == [
        ("greeting", None, {"id": orders})
    ]
    assert await _plugins(api, "/api/v1/routes/demo/plugins") == []
    assert len(await _plugins(api)) == 2

    # Moving a plugin to global scope: null references, like Kong.
    moved = await api.patch(f"/api/v1/plugins/{on_route.json()['id']}", json={"route": None})
    assert moved.status_code == 200, moved.text
    assert moved.json()["route"] is None


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        ({"name": "nope"}, ["body", "name"], "unknown plugin 'nope'"),
        (
            {"name": "greeting", "config": {"status": 99}},
            ["body", "config", "status"],
            "or equal to 100",
        ),
        ({"name": "greeting", "config": {"colour": 1}}, ["body", "config", "colour"], "Extra"),
        ({"name": "greeting", "config": "x"}, ["body", "config"], "valid dictionary"),
        ({"name": "greeting", "route": "missing"}, ["body", "route"], "unknown route 'missing'"),
        ({"name": "greeting", "service": {"name": "x"}}, ["body", "service"], "unknown service"),
        ({"name": "greeting", "consumer": "bob"}, ["body", "consumer"], "Extra inputs"),
        ({"config": {}}, ["body", "name"], "Field required"),
    ],
)
async def test_bad_plugin_is_422_and_stores_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    response = await api.post("/api/v1/plugins", json=body)
    _assert_invalid(response, loc, fragment)
    assert await _version(api) == 1
    assert await _plugins(api) == []


async def test_a_plugin_twice_on_one_scope_is_refused(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/routes/orders/plugins", json={"name": "greeting"})
    await api.post("/api/v1/plugins", json={"name": "greeting"})
    version = await _version(api)
    twice = await api.post("/api/v1/plugins", json={"name": "greeting", "route": "orders"})
    _assert_invalid(twice, ["body", "name"], "already configured on this scope")
    # Moving the global one onto the route would also make two: refused at the moved one.
    global_id = [p for p in (await api.get("/api/v1/plugins")).json()["data"] if not p["route"]]
    moved = await api.patch(f"/api/v1/plugins/{global_id[0]['id']}", json={"route": "orders"})
    _assert_invalid(moved, ["body", "name"], "already configured on this scope")
    assert await _version(api) == version


async def test_deleting_a_route_or_service_deletes_its_plugins(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/routes/orders/plugins", json={"name": "greeting"})
    await api.post("/api/v1/services/demo/plugins", json={"name": "greeting"})
    await api.post("/api/v1/plugins", json={"name": "greeting"})
    assert (await api.delete("/api/v1/routes/orders")).status_code == 204
    assert [p[1:] for p in await _plugins(api)] == [({"id": DEMO_ID}, None), (None, None)]
    assert (await api.delete("/api/v1/routes/demo")).status_code == 204
    assert (await api.delete("/api/v1/services/demo")).status_code == 204
    assert await _plugins(api) == [("greeting", None, None)]
    document = (await api.get("/api/v1/config")).json()
    assert [p["name"] for p in document["plugins"]] == ["greeting"]


async def test_plugin_schema_and_enabled_plugins(api: httpx.AsyncClient) -> None:
    schema = await api.get("/api/v1/plugins/schema/greeting")
    assert schema.status_code == 200, schema.text
    body = schema.json()
    assert body["type"] == "object"
    assert body["additionalProperties"] is False
    assert body["properties"]["status"] == {
        "default": 200,
        "maximum": 599,
        "minimum": 100,
        "title": "Status",
        "type": "integer",
    }
    unknown = await api.get("/api/v1/plugins/schema/nope")
    assert unknown.status_code == 404
    assert "no plugin 'nope'" in unknown.json()["message"]
    enabled = (await api.get("/api/v1/plugins/enabled")).json()["enabled_plugins"]
    assert "greeting" in enabled
    assert enabled == sorted(enabled)
