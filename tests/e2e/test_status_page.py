"""The public status page in a real browser (Debian's Chromium via Playwright) against a real server,
with a real SMTP server (aiosmtpd) receiving the double opt-in mail whose link the browser follows."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from e2e.harness import (
    SCREENSHOTS,
    browser_page,
    free_port,
    require_chromium,
    uvicorn_server,
)
from tocsin.auth import service as auth
from tocsin.auth.roles import Role
from tocsin.core.clock import FakeClock
from tocsin.db.engine import Database
from tocsin.incidents import service as incidents
from tocsin.incidents.schemas import IncidentCreate
from tocsin.policy.loader import default_policy
from tocsin.statuspage import service as statuspage
from tocsin.statuspage.links import Links
from tocsin.statuspage.schemas import StatusUpdateCreate
from tocsin.statuspage.vocab import UpdateStatus
from tocsin.testing import bearer, migrated_sqlite

pytestmark = pytest.mark.e2e

MAIL_SECONDS = 30
CONFIRM = re.compile(r"http://127\.0\.0\.1:\d+/status/subscribers/\d+/confirm\?token=[0-9a-f]+")


@dataclass
class Mailbox:
    """An aiosmtpd handler keeping every message it receives."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def wait_for(self, count: int) -> list[EmailMessage]:
        deadline = time.monotonic() + MAIL_SECONDS
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} mails arrived"
            time.sleep(0.1)
        return self.messages


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    mailbox: Mailbox


async def seed(database_url: str) -> str:
    """A responder's API token, and a week of history: an incident five days ago, resolved in two hours."""
    db = Database(database_url)
    policy = default_policy()
    # From local noon, so the two-hour incident five days later never spans the page's midnight.
    started = (datetime.now(UTC) - timedelta(days=10)).astimezone(policy.tz)
    clock = FakeClock(started.replace(hour=12, minute=0, second=0, microsecond=0).astimezone(UTC))
    links = Links("http://127.0.0.1", b"seed")
    try:
        async with db.transaction() as session:
            await statuspage.track(session, policy, clock.now())
            user = await auth.create_user(session, clock, name="comms", role=Role.responder)
            token = await auth.create_token(session, clock, user, "e2e")
        clock.advance(days=5)
        async with db.transaction() as session:
            data = IncidentCreate(title="Search was slow", severity="P1", components=["api"])
            past = await incidents.declare(session, clock, policy, "comms", data)
            await statuspage.post_update(session, clock, policy, links, past, "comms", StatusUpdateCreate())
        clock.advance(hours=2)
        async with db.transaction() as session:
            past = await incidents.get(session, past.id, for_update=True)
            done = StatusUpdateCreate(status=UpdateStatus.resolved)
            await statuspage.post_update(session, clock, policy, links, past, "comms", done)
        return token
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("status-e2e")
    database_url = migrated_sqlite(tmp / "template.db", tmp / "tocsin.db")
    token = asyncio.run(seed(database_url))
    mailbox = Mailbox()
    smtp_port, port = free_port(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "TOCSIN_DATABASE_URL": database_url,
        "TOCSIN_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "TOCSIN_MAIL_FROM": "status@haus.test",
        "TOCSIN_PUBLIC_URL": url,
        "TOCSIN_SECRET_KEY": "e2e-status-secret",
    }
    try:
        with uvicorn_server(tmp, env, port):
            yield Server(url, token, mailbox)
    finally:
        controller.stop()


def api(server: Server, method: str, path: str, body: dict[str, object] | None = None) -> httpx.Response:
    r = httpx.request(
        method, f"{server.url}/api/v1{path}", json=body, headers=bearer(server.token), timeout=10
    )
    assert r.status_code < 300, r.text
    return r


def test_outage_page_uptime_bars_and_email_subscription(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    ref = api(
        server,
        "POST",
        "/incidents",
        {
            "title": "Portal returns 503 for every page",
            "severity": "P0",
            "components": ["application", "api"],
            "description": "Every page of the portal answers 503",
        },
    ).json()["id"]
    api(server, "POST", f"/incidents/{ref}/status-updates", {})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p, browser_page(p, 1280, 900) as (page, problems):
        # The page within a second of the update (the render cache polls the page version).
        page.goto(f"{server.url}/status")
        expect(page.get_by_role("heading", level=1)).to_have_text("✕ Major System Outage")
        active = page.locator("article.incident.impact-critical")
        expect(active).to_contain_text("Portal returns 503 for every page")
        expect(active).to_contain_text("We're investigating reports of every page of the portal answers 503")
        for name in ("Application", "API"):
            row = page.locator("li.component", has=page.locator(".component-name", has_text=name))
            expect(row.first.locator(".status")).to_have_text("✕ Major outage")
        database = page.locator("li.component", has=page.locator(".component-name", has_text="Database"))
        expect(database.locator(".status")).to_have_text("✓ Operational")

        # 90 bars per component; five days ago the API had a partial outage, told on hover and focus.
        api_row = page.locator("li.component", has=page.locator(".component-name", has_text="API")).first
        bars = api_row.locator("ol.bars > li")
        expect(bars).to_have_count(90)
        expect(api_row.locator("ol.bars > li.bar-none")).to_have_count(79)  # tracked for 10 days and a bit
        past = api_row.locator("ol.bars > li.bar-partial_outage")
        expect(past).to_have_count(1)
        assert "Search was slow" in (past.get_attribute("title") or "")
        past.focus()
        expect(past.locator(".tip")).to_be_visible()
        expect(past.locator(".tip")).to_contain_text("INC-1: Search was slow")
        page.screenshot(path=str(SCREENSHOTS / "status-page.png"), full_page=True)

        # Subscribe by email; the confirmation mail's link confirms in the browser.
        page.get_by_label("Email address").fill("ada@haus.test")
        page.get_by_role("button", name="Subscribe by email").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")
        [mail] = server.mailbox.wait_for(1)
        assert mail["To"] == "ada@haus.test" and "Confirm your subscription" in str(mail["Subject"])
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None
        link = CONFIRM.search(body.get_content())
        assert link is not None, body.get_content()
        page.goto(link.group(0))
        page.get_by_role("button", name="Confirm subscription").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Subscribed")

        # The next update reaches the new subscriber.
        api(
            server,
            "POST",
            f"/incidents/{ref}/status-updates",
            {"status": "identified", "body": "A bad deploy; rolling back."},
        )
        mails = server.mailbox.wait_for(2)
        assert "Identified" in str(mails[1]["Subject"]) and "rolling back" in str(
            mails[1].get_body(preferencelist=("plain",))
        )

        # History, and a phone: nothing wider than the screen.
        page.goto(f"{server.url}/status/history/")
        expect(page.locator("main")).to_contain_text("Search was slow")
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/status", "/status/history/", f"/status/incidents/{ref}/"):
            page.goto(f"{server.url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    assert problems == []
