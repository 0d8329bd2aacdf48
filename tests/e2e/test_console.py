"""The console in a real browser: Debian's Chromium, driven by Playwright, against a real uvicorn server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from e2e.harness import PASSWORD, SCREENSHOTS, browser_page, require_chromium, user_with_token, uvicorn_server
from tocsin.testing import bearer, migrated_sqlite

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Server:
    url: str
    token: str  # an API token of the commander, to act "from elsewhere" while the page is open


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("e2e")
    database_url = migrated_sqlite(tmp / "template.db", tmp / "tocsin.db")
    token = asyncio.run(user_with_token(database_url, display_name="Ada"))
    with uvicorn_server(tmp, {"TOCSIN_DATABASE_URL": database_url}) as url:
        yield Server(url, token)


def api(server: Server, method: str, path: str, body: dict[str, object] | None = None) -> httpx.Response:
    r = httpx.request(
        method, f"{server.url}/api/v1{path}", json=body, headers=bearer(server.token), timeout=10
    )
    assert r.status_code < 300, r.text
    return r


def test_declare_acknowledge_investigate_resolve(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p, browser_page(p, 1366, 900) as (page, problems):
        # Signing in: a page without a session sends you to the form, then back.
        page.goto(f"{server.url}/")
        expect(page).to_have_url(f"{server.url}/login")
        page.get_by_label("Name").fill("ada")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("Wrong name or password")
        assert [m for m in problems if "401" not in m] == []  # the browser logs the 401 itself
        problems.clear()
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{server.url}/")
        expect(page.get_by_role("heading", name="Open incidents")).to_be_visible()

        # Declare a P1 from the dashboard.
        page.locator("#declare > summary").click()
        page.get_by_label("Title").fill("Magic-link sign-in emails not arriving")
        page.get_by_label("Severity", exact=True).select_option("P1")
        page.get_by_label("Description").fill(
            "Users report no sign-in email since 14:05; SendGrid shows 4xx."
        )
        page.get_by_label("Authentication").check()
        page.get_by_label("Email").check()
        page.locator("form.declare-form").get_by_role("button", name="Declare incident").click()
        expect(page).to_have_url(f"{server.url}/incidents/INC-1")
        summary = page.locator("#incident-summary")
        expect(summary.get_by_role("heading", level=1)).to_contain_text("Magic-link sign-in emails")
        expect(summary.locator(".status")).to_have_text("Triggered")
        expect(summary.locator(".sev")).to_contain_text("P1")

        # Acknowledge, then propose a hypothesis; both land on the timeline.
        page.get_by_role("button", name="Acknowledge").click()
        expect(summary.locator(".status")).to_have_text("Acknowledged")
        page.get_by_label("Propose a hypothesis").fill("SendGrid API key rotated by the 14:00 deploy")
        page.get_by_role("button", name="Propose").click()
        timeline = page.locator("#timeline")
        expect(timeline.locator(".kind-hypothesis")).to_contain_text("SendGrid API key rotated")

        page.locator("#form-commands > summary").click()
        page.get_by_label("Command", exact=True).fill(
            "railway logs --service production --tail 100 | grep ERROR"
        )
        page.get_by_label("Output").fill(
            "14:05:12 ERROR sendgrid: 401 Unauthorized (key revoked)\n14:05:40 ERROR magic-link: send failed"
        )
        page.get_by_label("Exit code").fill("0")
        page.get_by_role("button", name="Record command").click()
        expect(timeline.locator(".kind-command pre.output")).to_contain_text("401 Unauthorized")

        # Live: what others record shows up without a reload, and the header follows status changes.
        expect(page.locator("[data-live-status]")).to_have_text("Live")
        page.evaluate("window.__notReloaded = true")
        api(server, "POST", "/incidents/INC-1/notes", {"text": "Support: 37 tickets about missing emails"})
        expect(timeline).to_contain_text("37 tickets about missing emails")
        api(server, "POST", "/incidents/INC-1/status", {"status": "identified", "note": "key was revoked"})
        expect(summary.locator(".status")).to_have_text("Identified")
        assert page.evaluate("window.__notReloaded") is True
        expect(page.locator("[data-stale-note]")).to_be_visible()
        api(server, "POST", "/incidents/INC-1/roles", {"role": "communications", "person": "grace"})
        expect(summary).to_contain_text("grace")
        api(server, "POST", "/incidents/INC-1/roles", {"role": "commander", "person": "ada"})
        page.goto(f"{server.url}/incidents/INC-1")
        page.screenshot(path=str(SCREENSHOTS / "console-incident.png"), full_page=True)

        # Resolve.
        page.locator("#form-resolve > summary").click()
        page.get_by_label("Resolution summary").fill(
            "New SendGrid key deployed; emails flowing for 15 minutes."
        )
        page.get_by_role("button", name="Resolve incident").click()
        expect(summary.locator(".status")).to_have_text("Resolved")
        expect(page.locator("#sla-heading + .deadlines")).to_contain_text("met")

        # The dashboard, with a few more open incidents so the ordering shows.
        for severity, title in [
            ("P2", "Slow responses on /api/posts"),
            ("P0", "Portal returns 503 for every page"),
            ("P3", "Footer link points to the old blog"),
        ]:
            api(server, "POST", "/incidents", {"title": title, "severity": severity})
        api(server, "POST", "/incidents/INC-3/acknowledge", {})
        api(server, "POST", "/incidents/INC-3/roles", {"role": "commander", "person": "ada"})
        page.goto(f"{server.url}/")
        refs = page.locator("table.incidents tbody .ref")
        expect(refs).to_have_text(["INC-3", "INC-2", "INC-4"])
        expect(page.locator(".recent")).to_contain_text("Magic-link sign-in emails not arriving")
        page.screenshot(path=str(SCREENSHOTS / "console-dashboard.png"), full_page=True)

        # Readable on a phone: nothing wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/", "/incidents/INC-1"):
            page.goto(f"{server.url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    assert problems == []
