"""The Checks page in a real browser against a real server whose monitor really fails: a TCP check of a
port nobody listens on, run by the server's own runner every second."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from e2e.harness import (
    SCREENSHOTS,
    browser_page,
    free_port,
    require_chromium,
    seed_policy_file,
    sign_in,
    user_with_token,
    uvicorn_server,
)
from tocsin.testing import migrated_sqlite

pytestmark = pytest.mark.e2e


def test_a_failing_check_is_at_the_top(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    database_url = migrated_sqlite(tmp_path / "template.db", tmp_path / "tocsin.db")
    asyncio.run(user_with_token(database_url))
    closed = free_port()  # nothing listens here
    policy = seed_policy_file(tmp_path / "tocsin.yaml", "")
    text = policy.read_text(encoding="utf-8")
    text = text.replace(
        "monitors:\n",
        "monitors:\n  - {name: orders-db, component: database, kind: tcp, host: 127.0.0.1,"
        f" port: {closed}, interval: 1s, timeout: 1s, failure_threshold: 2}}\n",
        1,
    )
    text = text.replace(
        "heartbeats: []",
        "heartbeats:\n  - {name: nightly-backup, interval: 1d, grace: 30m, component: database}",
    )
    policy.write_text(text, encoding="utf-8")
    env = {"TOCSIN_DATABASE_URL": database_url, "TOCSIN_POLICY": str(policy)}
    with (
        uvicorn_server(tmp_path, env) as url,
        sync_playwright() as p,
        browser_page(p, 1366, 1000) as (page, problems),
    ):
        page.goto(f"{url}/login?next=/checks")
        sign_in(page)
        expect(page).to_have_url(f"{url}/checks")
        expect(
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Checks")
        ).to_have_attribute("aria-current", "page")
        banner = page.get_by_role("status", name="Failing checks")
        for _ in range(30):  # the runner checks every second; two failures make it down
            if "orders-db" in banner.inner_text():
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(banner).to_contain_text("1 failing: orders-db")
        rows = page.get_by_role("table", name="Health checks").locator("tbody tr")
        expect(rows.first).to_have_attribute("data-check", "orders-db")
        expect(rows.first).to_contain_text("Down")
        expect(rows.first).to_contain_text(re.compile(r"refused|connect", re.IGNORECASE))
        expect(page.locator('tr[data-check="portal-health"]')).to_contain_text("Disabled")
        beats = page.get_by_role("table", name="Heartbeats")
        expect(beats).to_contain_text("nightly-backup")
        expect(beats).to_contain_text("New")
        expect(page.get_by_text("No error-rate detectors")).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "console-checks.png"))

        # Readable on a phone: the tables scroll inside their cards, the page is no wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/checks", "/alerts", "/silences", "/oncall"):
            page.goto(f"{url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
        assert problems == []
