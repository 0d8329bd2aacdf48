"""The incident page's Paging card and its forms (escalate now, resolve with an override), through the
console over HTTP, on SQLite and PostgreSQL, after driving the engine with a fake clock."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from tocsin.app import build_runtime, create_app
from tocsin.auth.roles import Role
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.engine.worker import Worker
from tocsin.notify.models import OutboxMessage
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, seed_policy_with, user_with_token

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ALERT = re.compile(r'role="alert">(.*?)</div>', re.S)
TEAM = """
people:
  - name: alice
    email: alice@example.com
    slack: UALICE
    titles: [Senior Engineer]
    notify: [{via: slack, after: 0m}, {via: email, after: 5m}]
  - name: bob
    email: bob@example.com
    titles: [Engineering Manager]
  - name: carol
    email: carol@example.com
    titles: [CTO]
  - name: erin
    email: erin@example.com
    titles: [Incident Commander]
teams:
  - name: portal
    services: [portal]
    rotations:
      - {name: portal-primary, layer: primary, members: [alice], handoff: weekly, start: "2026-01-05 09:00"}
      - {name: portal-backup, layer: backup, members: [bob], handoff: weekly, start: "2026-01-05 09:00"}
"""


class Browser:
    """A signed-in console user: the client with the session cookie, its CSRF token, an API token."""

    def __init__(self, client: httpx.AsyncClient, csrf: str, token: str) -> None:
        self.client, self.csrf, self.token = client, csrf, token

    async def post(self, path: str, data: dict[str, Any], csrf: str | None = None) -> httpx.Response:
        return await self.client.post(path, data={**data, "csrf_token": self.csrf if csrf is None else csrf})

    async def page(self, path: str) -> str:
        r = await self.client.get(path)
        assert r.status_code == 200, r.text
        return html.unescape(r.text)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # a Tuesday, 10:00 in New York


@pytest.fixture
def rt(db: Database, clock: FakeClock) -> Runtime:
    settings = Settings(database_url=db.url, public_url="https://tocsin.example")
    return build_runtime(settings, clock=clock, db=db, policy=seed_policy_with(TEAM))


@pytest.fixture
def app(rt: Runtime) -> FastAPI:
    return create_app(runtime=rt)


@pytest.fixture
async def sign_in(
    app: FastAPI, rt: Runtime, clock: FakeClock
) -> AsyncIterator[Callable[[Role], Awaitable[Browser]]]:
    clients: list[httpx.AsyncClient] = []

    async def open_as(role: Role) -> Browser:
        name = f"{role.name}-web"
        token = await user_with_token(rt.db, clock, name, role, password=PASSWORD)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test")
        clients.append(client)
        form = CSRF.search((await client.get("/login")).text)
        assert form
        r = await client.post(
            "/login", data={"name": name, "password": PASSWORD, "csrf_token": form[1], "next": "/"}
        )
        assert r.status_code == 303
        match = CSRF.search((await client.get("/")).text)
        assert match
        return Browser(client, match[1], token)

    yield open_as
    for client in clients:
        await client.aclose()


async def run(rt: Runtime) -> int:
    """Fire every due timer (the engine, without its loop)."""
    return await Worker(rt.db, rt.clock, rt.handlers).tick()


async def declare(b: Browser, severity: str, **extra: Any) -> str:
    body = {"title": "Checkout is failing", "severity": severity, "services": ["portal"], **extra}
    r = await b.client.post("/api/v1/incidents", json=body, headers=bearer(b.token))
    assert r.status_code == 201, r.text
    ref: str = r.json()["id"]
    return ref


def card(page: str) -> str:
    """The Paging card's text, as a reader sees it (tags dropped, whitespace folded)."""
    start = page.index('id="paging"')
    return words(page[start : page.index("</section>", start)])


def words(markup: str) -> str:
    return (
        " ".join(re.sub(r"<[^>]*>", " ", markup).split())
        .replace(" ,", ",")
        .replace(" .", ".")
        .replace(" )", ")")
    )


async def test_the_card_shows_pages_escalations_reminders_and_deliveries(
    sign_in: Callable[[Role], Awaitable[Browser]], rt: Runtime, clock: FakeClock
) -> None:
    b = await sign_in(Role.responder)
    ref = await declare(b, "P2")
    text = card(await b.page(f"/incidents/{ref}"))
    assert "Nobody has been paged yet." in text and "No escalation chain has run." in text
    await run(rt)
    text = card(await b.page(f"/incidents/{ref}"))
    assert "alice" in text and "bob" in text and "Team assembly · paged 10:00 EST" in text
    assert text.count("Not acknowledged") == 2
    assert "Management update due 11:00 EST" in text  # P2: hourly
    assert "Escalates if unacknowledged 12:00 EST" in text  # P2 response: 2 h
    assert re.search(r"0 sent · \d+ pending · 0 failed · 0 suppressed", text)

    clock.advance(timedelta(hours=2))  # unacknowledged at the response deadline: the technical chain
    await run(rt)
    text = card(await b.page(f"/incidents/{ref}"))
    assert "Technical escalation, step 1 (Senior Engineer) · paged 12:00 EST" in text
    assert "Technical escalation (unacknowledged, started" in text
    assert "Next: step 2 of 3 (Engineering Manager) · due 12:15 EST" in text
    assert "Management update overdue" in text and "1 missed so far" in text  # due 11:00, not posted

    async with rt.db.transaction() as session:  # one message the channel refused for good
        first = await session.scalar(select(func.min(OutboxMessage.id)))
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == first)
            .values(status="failed", last_error="SMTP 550 mailbox unavailable")
        )
    r = await b.post(f"/incidents/{ref}/acknowledge", {"note": "on it"})
    assert r.status_code == 303, r.text
    text = card(await b.page(f"/incidents/{ref}"))
    assert "Not acknowledged" not in text and text.count("Acknowledged via console 12:00 EST") == 3
    assert "1 failed" in text and "SMTP 550 mailbox unavailable" in text
    assert "Escalates if unacknowledged" not in text  # acknowledged: that deadline no longer applies


async def test_escalate_now_from_the_console(
    sign_in: Callable[[Role], Awaitable[Browser]], rt: Runtime
) -> None:
    b = await sign_in(Role.responder)
    ref = await declare(b, "P2")
    await run(rt)
    page = await b.page(f"/incidents/{ref}")
    assert 'action="/incidents/' + ref + '/escalate"' in page
    assert '<option value="technical" selected>Technical escalation</option>' in page

    r = await b.post(f"/incidents/{ref}/escalate", {"chain": "business", "reason": "customers are calling"})
    assert r.status_code == 303, r.text
    text = card(await b.page(f"/incidents/{ref}"))
    assert "erin" in text and "Business escalation, step 1 (Incident Commander)" in text
    assert "Business escalation (manual" in text and "Next: step 2 of 3 (Product Manager)" in text
    r = await b.client.get(f"/api/v1/incidents/{ref}/timeline", headers=bearer(b.token))
    asked = [e for e in r.json() if e["kind"] == "escalation" and "requested" in e["data"]]
    assert asked[0]["actor"] == "responder-web" and asked[0]["data"]["requested"] == "customers are calling"

    r = await b.post(f"/incidents/{ref}/escalate", {"chain": "business"})  # again: the next step at once
    assert r.status_code == 303
    text = card(await b.page(f"/incidents/{ref}"))
    assert "Next: step 3 of 3 (CEO)" in text

    r = await b.post(f"/incidents/{ref}/escalate", {"chain": "nope"})
    assert r.status_code == 422
    alert = ALERT.search(r.text)
    assert alert and "unknown escalation chain 'nope'" in html.unescape(alert[1])
    assert 'id="form-escalate" open' in r.text


async def test_escalate_now_is_csrf_protected_role_checked_and_only_for_open_incidents(
    sign_in: Callable[[Role], Awaitable[Browser]], rt: Runtime
) -> None:
    b = await sign_in(Role.responder)
    ref = await declare(b, "P3")
    await run(rt)
    for csrf in ("", "forged"):
        r = await b.post(f"/incidents/{ref}/escalate", {"chain": "technical"}, csrf=csrf)
        assert r.status_code == 403 and "security token" in r.text
    viewer = await sign_in(Role.viewer)
    page = await viewer.page(f"/incidents/{ref}")
    assert 'id="paging"' in page and "form-escalate" not in page  # the card, without the form
    r = await viewer.post(f"/incidents/{ref}/escalate", {"chain": "technical"})
    assert r.status_code == 403 and "responder role" in r.text
    r = await b.client.get(f"/api/v1/incidents/{ref}/paging", headers=bearer(b.token))
    assert r.json()["escalations"] == []  # nothing ran

    r = await b.post(f"/incidents/{ref}/resolve", {"summary": "fixed"})
    assert r.status_code == 303
    assert "form-escalate" not in await b.page(f"/incidents/{ref}")
    r = await b.post(f"/incidents/{ref}/escalate", {"chain": "technical"})
    assert r.status_code == 422 and "only open incidents escalate" in html.unescape(r.text)


async def test_resolve_during_the_stability_watch_needs_an_override(
    sign_in: Callable[[Role], Awaitable[Browser]], rt: Runtime, clock: FakeClock
) -> None:
    b = await sign_in(Role.responder)
    ref = await declare(b, "P2")
    r = await b.post(f"/incidents/{ref}/status", {"status": "monitoring"})
    assert r.status_code == 303
    page = await b.page(f"/incidents/{ref}")
    assert "Stability watch running until 10:15 EST" in page and 'name="override_reason"' in page
    assert "Stability watch ends 10:15 EST" in card(page)

    r = await b.post(f"/incidents/{ref}/resolve", {"summary": "rolled back"})
    assert r.status_code == 409
    alert = ALERT.search(r.text)
    assert alert and "stability watch until" in alert[1] and "override reason" in alert[1]
    assert 'id="form-resolve" open' in r.text and "rolled back" in r.text  # the form, filled in again

    r = await b.post(
        f"/incidents/{ref}/resolve", {"summary": "rolled back", "override_reason": "verified by hand"}
    )
    assert r.status_code == 303, r.text
    r = await b.client.get(f"/api/v1/incidents/{ref}/timeline", headers=bearer(b.token))
    resolved = [e["data"] for e in r.json() if e["kind"] == "status_change" and e["data"]["to"] == "resolved"]
    assert resolved == [
        {"from": "monitoring", "to": "resolved", "note": "rolled back", "override": "verified by hand"}
    ]


async def test_after_the_watch_resolving_needs_no_override(
    sign_in: Callable[[Role], Awaitable[Browser]], rt: Runtime, clock: FakeClock
) -> None:
    b = await sign_in(Role.responder)
    ref = await declare(b, "P3")
    assert (await b.post(f"/incidents/{ref}/status", {"status": "mitigated"})).status_code == 303
    clock.advance(timedelta(minutes=16))
    await run(rt)
    page = await b.page(f"/incidents/{ref}")
    assert "Stability watch running" not in page and "stability watch before resolving" in page
    assert (await b.post(f"/incidents/{ref}/resolve", {"summary": "stable"})).status_code == 303
