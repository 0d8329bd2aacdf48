"""The incident page's Paging card in a real browser: Debian's Chromium, driven by Playwright, against a
real uvicorn server whose engine pages the on-call team; "Escalate now" pages the next person."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from e2e.harness import (
    SCREENSHOTS,
    browser_page,
    require_chromium,
    seed_policy_file,
    sign_in,
    user_with_token,
    uvicorn_server,
)
from tocsin.testing import bearer, migrated_sqlite

pytestmark = pytest.mark.e2e

ENGINE_SECONDS = 30  # how long to wait for the in-process engine to page (a bound, not a measurement)
TEAM = """
people:
  - {name: alice, full_name: Alice Ng, email: alice@example.com, titles: [Senior Engineer]}
  - {name: bob, full_name: Bob Osei, email: bob@example.com, titles: [Engineering Manager]}
  - {name: erin, full_name: Erin Park, email: erin@example.com, titles: [Incident Commander]}
  - {name: dave, full_name: Dave Ruiz, email: dave@example.com, titles: [Product Manager]}
teams:
  - name: portal
    services: [portal]
    rotations:
      - {name: portal-primary, layer: primary, members: [alice], handoff: weekly, start: "2020-01-06 09:00"}
      - {name: portal-backup, layer: backup, members: [bob], handoff: weekly, start: "2020-01-06 09:00"}
"""


@dataclass(frozen=True)
class Server:
    url: str
    token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("e2e-paging")
    database_url = migrated_sqlite(tmp / "template.db", tmp / "tocsin.db")
    token = asyncio.run(user_with_token(database_url))
    policy = seed_policy_file(tmp / "tocsin.yaml", TEAM)
    with uvicorn_server(tmp, {"TOCSIN_DATABASE_URL": database_url, "TOCSIN_POLICY": str(policy)}) as url:
        yield Server(url, token)


def declare_and_wait_for_pages(server: Server) -> str:
    """Declare a P2 over the API and wait until the engine has paged its team."""
    r = httpx.post(
        f"{server.url}/api/v1/incidents",
        json={"title": "Checkout is failing", "severity": "P2", "services": ["portal"]},
        headers=bearer(server.token),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    ref: str = r.json()["id"]
    deadline = time.monotonic() + ENGINE_SECONDS
    while True:
        paging = httpx.get(
            f"{server.url}/api/v1/incidents/{ref}/paging", headers=bearer(server.token), timeout=10
        ).json()
        if len(paging["pages"]) >= 2:
            return ref
        assert time.monotonic() < deadline, f"the engine did not page: {paging}"
        time.sleep(0.2)


def test_escalate_now_pages_the_next_person(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    ref = declare_and_wait_for_pages(server)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p, browser_page(p, 1366, 900) as (page, problems):
        page.goto(f"{server.url}/login?next=/incidents/{ref}")
        sign_in(page)
        expect(page).to_have_url(f"{server.url}/incidents/{ref}")

        card = page.locator("#paging")
        paged = card.get_by_role("list", name="People paged")
        expect(paged.locator("li")).to_have_count(2)
        expect(paged).to_contain_text("alice")
        expect(paged).to_contain_text("bob")
        expect(paged).to_contain_text("Team assembly")
        expect(paged.locator(".ack-no")).to_have_count(2)
        expect(card.get_by_role("definition").first).to_be_visible()  # pending reminders listed
        expect(card).to_contain_text("Management update due")

        page.locator("#form-escalate > summary").click()
        card.get_by_label("Chain").select_option("business")
        card.get_by_label("Reason").fill("customers are calling support")
        card.get_by_role("button", name="Escalate now").click()

        expect(page).to_have_url(re.compile(rf"/incidents/{ref}"))
        expect(paged.locator("li")).to_have_count(3)
        erin = paged.locator("li", has_text="erin")
        expect(erin).to_contain_text("Business escalation, step 1 (Incident Commander)")
        expect(erin.locator(".ack-no")).to_have_text("Not acknowledged")
        escalations = card.get_by_role("list", name="Escalation chains")
        expect(escalations).to_contain_text("Business escalation")
        expect(escalations).to_contain_text("Next: step 2 of 3 (Product Manager)")
        expect(page.locator("#timeline")).to_contain_text("customers are calling support")
        card.scroll_into_view_if_needed()
        card.screenshot(path=str(SCREENSHOTS / "console-paging.png"))

        page.set_viewport_size({"width": 390, "height": 844})  # readable on a phone
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert problems == []
