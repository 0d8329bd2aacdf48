"""The On call page in a real browser: Debian's Chromium, driven by Playwright, against a real server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from e2e.harness import (
    browser_page,
    require_chromium,
    seed_policy_file,
    sign_in,
    user_with_token,
    uvicorn_server,
)
from tocsin.testing import migrated_sqlite

pytestmark = pytest.mark.e2e

NY = ZoneInfo("America/New_York")
ONCALL = """
people:
  - {name: alice, full_name: Alice Ng, email: alice@example.com}
  - {name: bob, full_name: Bob Osei, email: bob@example.com}
  - {name: carol, full_name: Carol Diaz, email: carol@example.com}
teams:
  - name: portal
    title: Portal on-call
    services: [portal]
    rotations:
      - {name: portal-primary, members: [alice, bob], handoff: weekly, start: "2020-01-06 09:00"}
      - name: portal-office
        layer: backup
        members: [bob]
        handoff: weekly
        start: "2020-01-06 09:00"
        active: {from: "09:00", to: "17:00", days: [mon, tue, wed, thu, fri]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("e2e-oncall")
    database_url = migrated_sqlite(tmp / "template.db", tmp / "tocsin.db")
    asyncio.run(user_with_token(database_url))
    policy = seed_policy_file(tmp / "tocsin.yaml", ONCALL)
    with uvicorn_server(tmp, {"TOCSIN_DATABASE_URL": database_url, "TOCSIN_POLICY": str(policy)}) as url:
        yield url


def test_the_page_shows_who_is_on_call_and_an_override_changes_it(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p, browser_page(p, 1366, 900) as (page, problems):
        page.goto(f"{server}/oncall")
        expect(page).to_have_url(re.compile(r"/login"))
        sign_in(page)
        expect(page).to_have_url(f"{server}/oncall")
        expect(page.get_by_role("heading", name="On call", level=1)).to_be_visible()
        expect(
            page.get_by_role("navigation", name="Main").get_by_role("link", name="On call")
        ).to_have_attribute("aria-current", "page")

        primary = page.locator('tr[data-rotation="portal-primary"] .oncall-now')
        expect(primary).to_contain_text(re.compile(r"Alice Ng|Bob Osei"))
        expect(primary).not_to_contain_text("Carol Diaz")
        expect(page.get_by_text("No gaps in primary on-call in the next 4 weeks.")).to_be_visible()

        # "I'll take it from here": Carol covers primary from an hour ago for the next two hours.
        now = datetime.now(NY).replace(second=0, microsecond=0)
        form = page.get_by_role("form", name="Add an override")
        form.get_by_label("Rotation").select_option("portal-primary")
        form.get_by_label("Person").select_option("carol")
        form.get_by_label(re.compile(r"^From")).fill((now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        form.get_by_label(re.compile(r"^Until")).fill((now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        form.get_by_label(re.compile(r"^Note")).fill("swap with alice")
        form.get_by_role("button", name="Add override").click()

        expect(page).to_have_url(f"{server}/oncall")
        expect(primary).to_contain_text("Carol Diaz")
        expect(primary).to_contain_text("override")
        expect(page.locator("table").filter(has_text="swap with alice")).to_be_visible()

        # An override that ends before it starts is refused, in words, with the form kept.
        form = page.get_by_role("form", name="Add an override")
        form.get_by_label(re.compile(r"^From")).fill((now + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
        form.get_by_label(re.compile(r"^Until")).fill((now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        form.get_by_role("button", name="Add override").click()
        expect(page.get_by_role("alert")).to_contain_text("ends_at must be after starts_at")

        # Deleting it gives the rotation back to the schedule.
        page.goto(f"{server}/oncall")
        page.get_by_role("button", name="Delete").click()
        expect(primary).not_to_contain_text("Carol Diaz")
        expect(page.get_by_text("No current or future overrides.")).to_be_visible()
    assert [m for m in problems if "422" not in m] == []
