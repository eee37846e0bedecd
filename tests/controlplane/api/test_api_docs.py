"""The interactive API docs load without the internet (nothing from a CDN)."""

from __future__ import annotations

import re

import httpx

from controlplane.app import create_app
from controlplane.state import ControlPlane
from tests.conftest import serve_asgi


async def test_docs_page_and_its_assets_are_served_locally(control_plane: ControlPlane) -> None:
    async with (
        serve_asgi(create_app(control_plane)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        page = await client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        sources += re.findall(r"""url: ['"]([^'"]+)['"]""", page.text)
        assert sources
        for source in sources:
            assert source.startswith("/"), f"{source} is not served by the control plane"
            assert (await client.get(source)).status_code == 200, source
