"""The viewer is public, its data is not: the admin token is asked for and sent on each call."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import ADMIN_TOKEN, Viewer

pytestmark = pytest.mark.ui


def test_pages_are_served_without_a_token_with_a_strict_policy(viewer: Viewer) -> None:
    index = httpx.get(viewer.url, timeout=5)
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    policy = index.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    script = httpx.get(viewer.stack.api + "/ui/js/app.js", timeout=5)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(viewer.stack.api + "/ui/../settings.py", timeout=5).status_code == 404
    assert httpx.get(viewer.stack.api + "/api/v1/nodes", timeout=5).status_code == 401


def test_the_token_is_asked_for_checked_and_remembered(anonymous_page: Page) -> None:
    page = anonymous_page
    page.goto("/#/nodes")

    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#token-error")).to_be_hidden()
    page.locator("#token-input").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_have_text("The control plane refused that token.")

    page.locator("#token-input").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#nodes-table tbody tr")).to_have_count(3)

    page.reload()
    expect(page.locator("#nodes-table tbody tr")).to_have_count(3)
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Forget token").click()
    expect(dialog).to_be_visible()
