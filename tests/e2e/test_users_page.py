"""The Users page in a real browser: an admin adds someone, gives them a token, revokes it when it
leaks, and disables them when they leave; readable on a phone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from e2e.harness import SCREENSHOTS, browser_page, require_chromium, sign_in, user_with_token, uvicorn_server
from tocsin.auth.roles import Role
from tocsin.testing import bearer, migrated_sqlite

pytestmark = pytest.mark.e2e


def test_an_admin_adds_a_user_gives_a_token_revokes_it_and_disables_them(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    database_url = migrated_sqlite(tmp_path / "template.db", tmp_path / "tocsin.db")
    asyncio.run(user_with_token(database_url, Role.admin, display_name="Ada Lovelace"))
    with (
        uvicorn_server(tmp_path, {"TOCSIN_DATABASE_URL": database_url}) as url,
        sync_playwright() as p,
        browser_page(p, 1366, 900) as (page, problems),
    ):
        page.goto(f"{url}/login?next=/users")
        sign_in(page)
        expect(page).to_have_url(f"{url}/users")
        form = page.get_by_role("form", name="New user")
        form.get_by_label("Login name").fill("grace")
        form.get_by_label("Role").select_option("responder")
        form.get_by_label("Full name").fill("Grace Hopper")
        form.get_by_label("Password").fill("a long passphrase")
        form.get_by_role("button", name="Create user").click()
        row = page.locator('tr[data-user="grace"]')
        expect(row).to_contain_text("Grace Hopper")
        expect(row).to_contain_text("Enabled")

        row.get_by_label("Token name for grace").fill("laptop")
        row.get_by_role("button", name="New token").click()
        token = page.get_by_label("Token", exact=True).inner_text()
        assert httpx.get(f"{url}/api/v1/me", headers=bearer(token)).json()["name"] == "grace"
        page.screenshot(path=str(SCREENSHOTS / "console-users.png"))

        page.goto(f"{url}/users")
        row.get_by_role("button", name="Revoke token laptop of grace").click()
        expect(row).to_contain_text("revoked")
        assert httpx.get(f"{url}/api/v1/me", headers=bearer(token)).status_code == 401

        row.get_by_role("button", name="Disable grace").click()
        expect(row).to_contain_text("Disabled")
        expect(row.get_by_role("button", name="New token")).to_have_count(0)
        expect(page.locator('tr[data-user="ada"]').get_by_role("button", name="Disable ada")).to_have_count(0)

        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/users", "/integrations"):
            page.goto(f"{url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        assert problems == []
