"""``GET /api/v1/config`` is a document ``PUT /api/v1/config`` takes back unchanged."""

from __future__ import annotations

import httpx
import yaml

from controlplane.app import create_app
from controlplane.demo.config import demo_config
from controlplane.state import ControlPlane
from tests.conftest import serve_asgi


async def test_exported_config_is_valid_input(control_plane: ControlPlane) -> None:
    async with (
        serve_asgi(create_app(control_plane)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        document = demo_config("http://127.0.0.1:9000")
        document["consumers"] = [{"username": "alice", "keyauth_credentials": [{"key": "k1"}]}]
        first = await client.put("/api/v1/config", json=document)
        assert first.status_code == 200, first.text
        exported = await client.get("/api/v1/config")
        assert exported.status_code == 200
        again = await client.put("/api/v1/config", json=exported.json())
        assert again.status_code == 200, again.text
        assert again.json() == {**first.json(), "changed": False}

        as_yaml = await client.get("/api/v1/config", headers={"accept": "application/yaml"})
        back = await client.put(
            "/api/v1/config",
            content=as_yaml.text,
            headers={"content-type": "application/yaml"},
        )
        assert back.json()["changed"] is False
        assert yaml.safe_load(as_yaml.text)["routes"][0]["service"]
