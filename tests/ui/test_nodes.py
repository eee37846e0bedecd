"""The nodes page: every node with status, version, last seen, config hash, sessions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import Viewer

pytestmark = pytest.mark.ui


def test_nodes_page_lists_every_node(
    page: Page, viewer: Viewer, screenshot: Callable[[Page, str], None]
) -> None:
    session = viewer.create_session(name="nodes page", targets=["dp-2"])
    config_hash = viewer.stack.ok("GET", "/api/v1/nodes/dp-1")["config_hash"]

    page.goto("/#/nodes")

    rows = page.locator("#nodes-table tbody tr")
    expect(rows).to_have_count(3)
    dp1 = page.locator("tr[data-node='dp-1']")
    expect(dp1.locator(".node-status")).to_have_text("connected")
    expect(dp1).to_contain_text("dp-1.local")
    expect(dp1).to_contain_text("zone=eu-west-1a")
    expect(dp1).to_contain_text("0.1.0")
    expect(dp1.locator("code")).to_have_text(config_hash[:12])
    dp2 = page.locator("tr[data-node='dp-2']")
    expect(dp2.get_by_role("link", name=session["id"][:8])).to_be_visible()
    retired = page.locator("tr[data-node='dp-retired']")
    expect(retired.locator(".node-status")).to_have_text("disconnected")
    expect(page.locator(".nav a.active")).to_have_text("Nodes")
    screenshot(page, "nodes")

    dp2.get_by_role("link", name=session["id"][:8]).click()
    expect(page).to_have_url(f"{viewer.url}#/sessions/{session['id']}")
    viewer.stack.ok("POST", f"/api/v1/tracing-sessions/{session['id']}/stop")
