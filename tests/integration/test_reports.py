"""User reports: the public form and API, rate limits, burst alerts and triage, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tocsin.app import create_app
from tocsin.auth.roles import Role
from tocsin.reports import jobs, service
from tocsin.reports.schemas import ReportCreate
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, user_with_token

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

Client = Callable[[str], httpx.AsyncClient]


@pytest.fixture
def app(rt: Runtime) -> FastAPI:
    return create_app(runtime=rt)


@pytest.fixture
async def from_address(app: FastAPI) -> AsyncIterator[Client]:
    """An HTTP client per client address, as different people's browsers would be."""
    clients: dict[str, httpx.AsyncClient] = {}

    def open_from(address: str) -> httpx.AsyncClient:
        if address not in clients:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            clients[address] = httpx.AsyncClient(transport=transport, base_url="http://tocsin.test")
        return clients[address]

    yield open_from
    for c in clients.values():
        await c.aclose()


async def report(c: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await c.post("/api/v1/reports", json={"description": "I cannot sign in", **body})


async def incidents(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/incidents", headers=bearer(token))
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def timeline_texts(client: httpx.AsyncClient, token: str, ref: str) -> list[str]:
    events = (await client.get(f"/api/v1/incidents/{ref}/timeline", headers=bearer(token))).json()
    return [e["data"].get("text", "") for e in events if e["kind"] == "note"]


async def test_api_takes_a_report_without_a_token(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    r = await report(
        client, component="authentication", description="Magic link\r\nnever arrives", email="ada@example.com"
    )
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["id"] == 1 and receipt["status"] == "new" and receipt["component"] == "authentication"
    listed = await client.get("/api/v1/reports", headers=bearer(tokens["responder"]))
    assert listed.status_code == 200
    item = listed.json()["items"][0]
    assert item["channel"] == "api" and item["client"] == "127.0.0.1" and item["email"] == "ada@example.com"
    assert item["description"] == "Magic link\nnever arrives" and item["incident"] is None
    assert (await client.get("/api/v1/reports/1", headers=bearer(tokens["responder"]))).json()["id"] == 1
    # Reports carry reporters' contact details: responders only.
    assert (await client.get("/api/v1/reports", headers=bearer(tokens["viewer"]))).status_code == 403
    assert (await client.get("/api/v1/reports")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"component": "billing"}, "component"),
        ({"component": "Not A Slug"}, "component"),
        ({"description": "   "}, "description"),
        ({"description": "bell\x07"}, "description"),
        ({"description": "x" * 5001}, "description"),
        ({"email": "not an address"}, "email"),
        ({"email": "ada@example.com\nBcc: all@example.com"}, "email"),
        ({"channel": "email"}, "channel"),
    ],
)
async def test_bad_reports_are_422_naming_the_field(
    client: httpx.AsyncClient, tokens: dict[str, str], body: dict[str, Any], field: str
) -> None:
    r = await report(client, **body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field
    assert (await client.get("/api/v1/reports", headers=bearer(tokens["responder"]))).json()["total"] == 0


async def test_malformed_bodies_are_answered_in_tocsins_shape(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/reports", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    r = await client.post("/api/v1/reports", content=b"description=x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = await client.post("/api/v1/reports", json={})
    assert r.status_code == 422 and r.json()["error"]["field"] == "description"


async def test_rate_limited_per_client_address(
    from_address: Client, tokens: dict[str, str], clock: FakeClock
) -> None:
    noisy, other = from_address("203.0.113.7"), from_address("198.51.100.2")
    for _ in range(service.RATE_LIMIT):
        assert (await report(noisy)).status_code == 201
        clock.advance(seconds=30)
    r = await report(noisy)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    # The first report leaves the ten-minute window 10m after it was sent: 2m30s after now.
    assert r.headers["retry-after"] == "450"
    assert (await report(other)).status_code == 201  # someone else is not held back
    clock.advance(seconds=451)
    assert (await report(noisy)).status_code == 201
    listed = await other.get("/api/v1/reports?limit=100", headers=bearer(tokens["responder"]))
    assert listed.json()["total"] == service.RATE_LIMIT + 2


async def test_reports_from_three_people_raise_one_alert_that_opens_an_incident(
    from_address: Client, tokens: dict[str, str], clock: FakeClock
) -> None:
    viewer = tokens["viewer"]
    c = from_address("192.0.2.1")
    for _ in range(3):  # one person three times is one voice
        assert (await report(c, component="authentication")).status_code == 201
    assert await incidents(c, viewer) == []
    for n, address in enumerate(["192.0.2.2", "192.0.2.3"]):
        clock.advance(minutes=5)
        assert (await report(from_address(address), component="authentication")).status_code == 201
        assert len(await incidents(c, viewer)) == n  # the third voice, 10 minutes in, raises it
    found = await incidents(c, viewer)
    assert len(found) == 1
    inc = found[0]
    assert inc["title"] == "3 user reports about Authentication in 15m"
    assert inc["source"] == "user_report" and inc["severity"] == "P1"  # the policy's authentication rule
    assert inc["components"] == ["authentication"] and inc["services"] == ["portal"]
    for address in ["192.0.2.4", "192.0.2.5"]:  # the same burst: no second alert
        clock.advance(minutes=1)
        assert (await report(from_address(address), component="authentication")).status_code == 201
    alerts = (await c.get("/api/v1/alerts", headers=bearer(viewer))).json()
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["dedup_key"] == "reports:authentication" and alert["integration"] == "tocsin-reports"
    assert alert["labels"]["source"] == "user-reports" and alert["labels"]["component"] == "authentication"
    assert alert["count"] == 1 and alert["incident"] == inc["id"]
    assert len(await incidents(c, viewer)) == 1


async def test_reports_spread_wider_than_the_window_raise_nothing(
    from_address: Client, tokens: dict[str, str], clock: FakeClock
) -> None:
    for address in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]:
        assert (await report(from_address(address), component="api")).status_code == 201
        clock.advance(minutes=8)  # never three within 15 minutes
    assert await incidents(from_address("192.0.2.1"), tokens["viewer"]) == []


async def burst(from_address: Client, clock: FakeClock, component: str, first: int) -> None:
    for n in range(first, first + 3):
        r = await report(from_address(f"192.0.2.{n}"), component=component)
        assert r.status_code == 201
        clock.advance(minutes=1)


async def test_a_later_burst_joins_an_open_incident_or_opens_a_new_one(
    from_address: Client, tokens: dict[str, str], clock: FakeClock
) -> None:
    c, viewer = from_address("192.0.2.200"), tokens["viewer"]
    await burst(from_address, clock, "email", 1)
    first = (await incidents(c, viewer))[0]
    assert first["severity"] == "P2" and first["title"] == "3 user reports about Email in 15m"
    clock.advance(minutes=30)  # a quiet window ends the burst; the incident is still open
    await burst(from_address, clock, "email", 10)
    assert len(await incidents(c, viewer)) == 1
    assert "3 user reports about Email in 15m: a new burst of reports joined this incident" in (
        await timeline_texts(c, viewer, first["id"])
    )
    r = await c.post(f"/api/v1/incidents/{first['id']}/resolve", json={}, headers=bearer(tokens["responder"]))
    assert r.status_code == 200
    clock.advance(minutes=30)
    await burst(from_address, clock, "email", 20)
    found = await incidents(c, viewer)
    assert len(found) == 2 and found[0]["status"] == "triggered" and found[1]["status"] == "resolved"
    alerts = (await c.get("/api/v1/alerts?status=resolved", headers=bearer(viewer))).json()
    alerts = (await c.get("/api/v1/alerts", headers=bearer(viewer))).json() + alerts
    assert [(a["status"], a["incident"]) for a in alerts] == [
        ("firing", found[0]["id"]),
        ("resolved", found[1]["id"]),
    ]


async def test_an_alert_left_pending_by_a_crash_is_raised_by_the_retry_loop(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], clock: FakeClock
) -> None:
    # Store the reports as `take` does, but "crash" before the alert reaches the pipeline.
    for n in range(3):
        async with rt.db.transaction() as session:
            received = await service.receive(
                session,
                clock,
                rt.policy,
                ReportCreate(component="database", description="everything is slow"),
                channel="api",
                client=f"192.0.2.{n}",
                reporter=service.reporter_by_address(f"192.0.2.{n}"),
            )
    assert received.alert_due == "database"
    assert await jobs.retry_pending(rt) == 0  # not yet overdue: a live request may still be raising it
    clock.advance(minutes=2)
    assert await jobs.retry_pending(rt) == 1
    assert await jobs.retry_pending(rt) == 0
    found = await incidents(client, tokens["viewer"])
    assert len(found) == 1 and found[0]["title"] == "3 user reports about Database in 15m"


async def test_triage_links_with_a_timeline_note_or_dismisses(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    responder = bearer(tokens["responder"])
    declared = await client.post(
        "/api/v1/incidents", json={"title": "Sign-in broken", "severity": "P1"}, headers=responder
    )
    ref = declared.json()["id"]
    for text in ["Login page spins forever", "Buy cheap watches", "Cannot log in either"]:
        assert (await report(client, description=text)).status_code == 201
    triage = "/api/v1/reports/{}/triage"
    r = await client.post(triage.format(1), json={"action": "link", "incident": ref}, headers=responder)
    assert r.status_code == 200, r.text
    linked = r.json()
    assert linked["status"] == "linked" and linked["incident"] == ref
    assert linked["triaged_by"] == "responder-user" and linked["triaged_at"] is not None
    assert "user report #1 linked: Login page spins forever" in await timeline_texts(
        client, tokens["viewer"], ref
    )
    r = await client.post(triage.format(1), json={"action": "link", "incident": ref}, headers=responder)
    assert r.status_code == 409 and ref in r.json()["error"]["message"]
    r = await client.post(triage.format(2), json={"action": "dismiss"}, headers=responder)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    r = await client.post(triage.format(2), json={"action": "dismiss"}, headers=responder)
    assert r.status_code == 409
    r = await client.post(triage.format(3), json={"action": "link"}, headers=responder)
    assert r.status_code == 422 and r.json()["error"]["field"] == "incident"
    r = await client.post(triage.format(3), json={"action": "link", "incident": 99}, headers=responder)
    assert r.status_code == 422 and r.json()["error"]["field"] == "incident"
    r = await client.post(triage.format(3), json={"action": "dismiss", "incident": ref}, headers=responder)
    assert r.status_code == 422 and r.json()["error"]["field"] == "incident"
    r = await client.post(triage.format(3), json={"action": "ignore"}, headers=responder)
    assert r.status_code == 422 and r.json()["error"]["field"] == "action"
    r = await client.post(triage.format(99), json={"action": "dismiss"}, headers=responder)
    assert r.status_code == 404
    r = await client.post(triage.format(3), json={"action": "dismiss"}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 403
    await client.post(f"/api/v1/incidents/{ref}/resolve", json={}, headers=responder)
    r = await client.post(triage.format(3), json={"action": "link", "incident": ref}, headers=responder)
    assert r.status_code == 409 and r.json()["error"]["field"] == "incident"
    new = (await client.get("/api/v1/reports?status=new", headers=responder)).json()
    assert [item["id"] for item in new["items"]] == [3]


# --- The public form -----------------------------------------------------------------------------------


async def form_token(c: httpx.AsyncClient) -> str:
    page = await c.get("/report")
    assert page.status_code == 200
    match = TOKEN.search(page.text)
    assert match, page.text
    return match[1]


async def test_public_form_takes_a_report_without_signing_in(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    page = await client.get("/report")
    assert page.status_code == 200
    assert 'name="website"' in page.text and "Authentication" in page.text  # honeypot, policy components
    assert "default-src 'self'" in page.headers["content-security-policy"]
    token = TOKEN.search(page.text)
    assert token
    clock.advance(seconds=20)
    form = {
        "form_token": token[1],
        "component": "email",
        "description": "No email\r\nsince noon",
        "email": "",
    }
    r = await client.post("/report", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/report/thanks"
    thanks = await client.get("/report/thanks")
    assert thanks.status_code == 200 and "Thank you" in thanks.text
    item = (await client.get("/api/v1/reports", headers=bearer(tokens["responder"]))).json()["items"][0]
    assert item["channel"] == "web" and item["component"] == "email" and item["email"] is None
    assert item["description"] == "No email\nsince noon"


async def test_public_form_turns_bots_away(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    token = await form_token(client)
    form = {"form_token": token, "description": "Great deals at example.com"}
    r = await client.post("/report", data=form)  # sent the instant it loaded
    assert r.status_code == 422 and "very quick" in r.text
    assert "Great deals at example.com" in r.text  # kept for a person to send again
    clock.advance(seconds=10)
    r = await client.post("/report", data={**form, "website": "http://example.com"})
    assert r.status_code == 303  # the honeypot: thanked, and nothing kept
    forged = token[:-1] + ("1" if token.endswith("0") else "0")
    r = await client.post("/report", data={**form, "form_token": forged})
    assert r.status_code == 422 and "expired" in r.text
    r = await client.post("/report", data={"description": "no token at all"})
    assert r.status_code == 422
    clock.advance(hours=13)
    r = await client.post("/report", data=form)
    assert r.status_code == 422 and "expired" in r.text
    assert (await client.get("/api/v1/reports", headers=bearer(tokens["responder"]))).json()["total"] == 0


async def test_public_form_errors_are_readable_pages(
    from_address: Client, tokens: dict[str, str], clock: FakeClock
) -> None:
    c = from_address("203.0.113.9")
    token = await form_token(c)
    clock.advance(seconds=30)
    r = await c.post("/report", data={"form_token": token, "description": "Broken", "email": "ada at home"})
    assert r.status_code == 422
    assert "Email: is not an email address." in r.text and 'aria-invalid="true"' in r.text
    assert ">Broken</textarea>" in r.text
    r = await c.post("/report", data={"form_token": token, "description": "  "})
    assert r.status_code == 422 and "Description is required." in r.text
    for _ in range(service.RATE_LIMIT):
        assert (
            await c.post("/report", data={"form_token": token, "description": "Broken"})
        ).status_code == 303
    r = await c.post("/report", data={"form_token": token, "description": "Still broken"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) == 600
    assert "Please wait about 10 minutes" in r.text and "Still broken" in r.text
    assert r.headers["content-type"].startswith("text/html")


# --- Triage on the console -----------------------------------------------------------------------------


async def sign_in(app: FastAPI, rt: Runtime, clock: FakeClock, role: Role) -> tuple[httpx.AsyncClient, str]:
    name = f"{role.name}-web"
    await user_with_token(rt.db, clock, name, role, password=PASSWORD)
    c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test")
    login = await c.get("/login")
    match = CSRF.search(login.text)
    assert match
    r = await c.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": match[1], "next": "/"})
    assert r.status_code == 303
    match = CSRF.search((await c.get("/")).text)
    assert match
    return c, match[1]


SignIn = Callable[[Role], Awaitable[tuple[httpx.AsyncClient, str]]]


@pytest.fixture
async def console(app: FastAPI, rt: Runtime, clock: FakeClock) -> AsyncIterator[SignIn]:
    opened: list[httpx.AsyncClient] = []

    async def open_as(role: Role) -> tuple[httpx.AsyncClient, str]:
        c, csrf = await sign_in(app, rt, clock, role)
        opened.append(c)
        return c, csrf

    yield open_as
    for c in opened:
        await c.aclose()


async def test_triage_page_links_and_dismisses(
    client: httpx.AsyncClient, console: SignIn, tokens: dict[str, str]
) -> None:
    assert (await client.get("/reports")).status_code == 303  # not signed in: to the login form
    viewer, _ = await console(Role.viewer)
    assert (await viewer.get("/reports")).status_code == 403
    declared = await client.post(
        "/api/v1/incidents",
        json={"title": "Uploads failing", "severity": "P2", "components": ["cdn"]},
        headers=bearer(tokens["responder"]),
    )
    ref = declared.json()["id"]
    await report(client, component="cdn", description="Images <b>do not</b> load", email="ada@example.com")
    await report(client, description="Spam spam spam")
    web, csrf = await console(Role.responder)
    page = await web.get("/reports")
    assert page.status_code == 200
    assert "Images &lt;b&gt;do not&lt;/b&gt; load" in page.text and "ada@example.com" in page.text
    assert f'<option value="{ref}" selected>' in page.text  # the open incident about the CDN
    r = await web.post("/reports/2/triage", data={"csrf_token": csrf, "action": "dismiss"})
    assert r.status_code == 303 and r.headers["location"] == "/reports?status=new"
    r = await web.post("/reports/1/triage", data={"csrf_token": csrf, "action": "link", "incident": ref})
    assert r.status_code == 303
    page = await web.get("/reports")
    assert "No reports waiting for triage." in page.text
    linked = await web.get("/reports?status=linked")
    assert f'href="/incidents/{ref}"' in linked.text and "responder-web" in linked.text
    incident_page = await web.get(f"/incidents/{ref}")
    assert "user report #1 linked: Images &lt;b&gt;do not&lt;/b&gt; load" in incident_page.text
    r = await web.post("/reports/1/triage", data={"csrf_token": csrf, "action": "link", "incident": ref})
    assert r.status_code == 409 and "already linked" in r.text
    r = await web.post("/reports/2/triage", data={"csrf_token": "forged", "action": "dismiss"})
    assert r.status_code == 403
    r = await web.post("/reports/77/triage", data={"csrf_token": csrf, "action": "dismiss"})
    assert r.status_code == 404
