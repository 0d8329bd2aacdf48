"""The console's status-page parts: the incident page's update form and the maintenance screen."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tocsin.app import create_app
from tocsin.auth.roles import Role
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, user_with_token

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(rt: Runtime) -> FastAPI:
    return create_app(runtime=rt)


@pytest.fixture
async def browser(
    app: FastAPI, rt: Runtime, clock: FakeClock
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """A signed-in responder: (client with the session cookie, CSRF token, API token)."""
    token = await user_with_token(rt.db, clock, "grace", Role.responder, password=PASSWORD)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://tocsin.test"
    ) as client:
        form = await client.get("/login")
        match = CSRF.search(form.text)
        assert match
        r = await client.post(
            "/login", data={"name": "grace", "password": PASSWORD, "csrf_token": match[1], "next": "/"}
        )
        assert r.status_code == 303
        page = CSRF.search((await client.get("/")).text)
        assert page
        yield client, page[1], token


async def test_incident_page_offers_the_filled_in_template_and_posts_it(
    browser: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, csrf, token = browser
    r = await client.post(
        "/api/v1/incidents",
        json={"title": "Login loops", "severity": "P1", "components": ["authentication"]},
        headers=bearer(token),
    )
    ref = r.json()["id"]
    page = (await client.get(f"/incidents/{ref}")).text
    assert "Post status update" in page
    assert "re investigating reports of login loops." in html.unescape(page)
    assert 'value="authentication=partial_outage" selected' in page
    r = await client.post(
        f"/incidents/{ref}/status-updates",
        data={
            "csrf_token": csrf,
            "status": "identified",
            "body": "Sessions expire at once; fix on the way.",
            "components": ["authentication=major_outage", "email=unchanged"],
        },
    )
    assert r.status_code == 303, r.text
    updates = (await client.get(f"/api/v1/incidents/{ref}/status-updates", headers=bearer(token))).json()
    assert updates[0]["status"] == "identified" and updates[0]["body"].startswith("Sessions expire")
    assert [a["code"] for a in updates[0]["affected_components"]] == ["authentication"]
    page = (await client.get(f"/incidents/{ref}")).text
    assert "Deliveries to subscribers: 0 sent" in page and "Sessions expire at once" in page
    bad = await client.post(
        f"/incidents/{ref}/status-updates", data={"csrf_token": csrf, "status": "identified", "body": ""}
    )
    assert bad.status_code == 422 and "That did not work" in bad.text


async def test_internal_incident_page_says_it_is_never_public(
    browser: tuple[httpx.AsyncClient, str, str],
) -> None:
    client, _, token = browser
    r = await client.post(
        "/api/v1/incidents", json={"title": "CI flaky", "severity": "P3"}, headers=bearer(token)
    )
    page = (await client.get(f"/incidents/{r.json()['id']}")).text
    assert (
        "Internal incident: it never appears on the status page." in page and "Post status update" not in page
    )


async def test_maintenance_screen_switches_mode_and_schedules(
    browser: tuple[httpx.AsyncClient, str, str], clock: FakeClock
) -> None:
    client, csrf, token = browser
    assert "Turn maintenance mode on" in (await client.get("/maintenance")).text
    r = await client.post(
        "/maintenance/mode",
        data={"csrf_token": csrf, "on": "true", "components": ["cdn"], "title": "CDN swap"},
    )
    assert r.status_code == 303, r.text
    doc = (await client.get("/status/api/v2/components.json")).json()
    assert {c["id"]: c["status"] for c in doc["components"]}["cdn"] == "under_maintenance"
    r = await client.post("/maintenance/mode", data={"csrf_token": csrf, "on": "false"})
    assert r.status_code == 303
    start = clock.now().astimezone().replace(tzinfo=None)
    r = await client.post(
        "/maintenance/schedule",
        data={
            "csrf_token": csrf,
            "title": "Database upgrade",
            "scheduled_for": (start.replace(microsecond=0)).isoformat(timespec="minutes"),
            "scheduled_until": start.replace(year=start.year + 1).isoformat(timespec="minutes"),
        },
    )
    assert r.status_code == 303, r.text
    page = (await client.get("/maintenance")).text
    assert "Database upgrade" in page and "CDN swap" in page
    bad = await client.post(
        "/maintenance/schedule", data={"csrf_token": csrf, "title": "x", "scheduled_for": "soon"}
    )
    assert bad.status_code == 422 and "not a date and time" in bad.text
    forged = await client.post("/maintenance/mode", data={"csrf_token": "nope", "on": "true"})
    assert forged.status_code == 403
    listed = (await client.get("/api/v1/status/maintenances", headers=bearer(token))).json()
    assert sorted(m["status"] for m in listed) == ["completed", "scheduled"]
