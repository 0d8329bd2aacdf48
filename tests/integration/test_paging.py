"""Paging, escalation and the communication cadence, driven by the timer engine with a fake clock,
on SQLite and PostgreSQL: who is paged for which severity, over which contact and when; what an
acknowledgement stops; chains stepping with their delays; reminders; the stability watch."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from sqlalchemy import select

from tocsin.app import build_runtime
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.engine.worker import Worker
from tocsin.notify.models import OutboxMessage
from tocsin.oncall.models import Page
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, seed_policy_with

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
    notify: [{via: email, after: 0m}]
  - name: carol
    email: carol@example.com
    titles: [CTO]
  - name: dave
    email: dave@example.com
    titles: [Product Manager]
  - name: erin
    email: erin@example.com
    titles: [Incident Commander]
teams:
  - name: portal
    services: [portal]
    rotations:
      - {name: portal-primary, layer: primary, members: [alice], handoff: weekly, start: "2026-01-05 09:00"}
      - {name: portal-backup, layer: backup, members: [bob], handoff: weekly, start: "2026-01-05 09:00"}
      - {name: managers, layer: management, members: [dave], handoff: weekly, start: "2026-01-05 09:00"}
"""
SLACK_SECRET = "slack-signing-secret"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))  # a Tuesday, 10:00 in New York


@pytest.fixture
def rt(db: Database, clock: FakeClock) -> Runtime:
    settings = Settings(
        database_url=db.url,
        slack_token="xoxb-test",
        slack_signing_secret=SLACK_SECRET,
        public_url="https://tocsin.example",
    )
    return build_runtime(settings, clock=clock, db=db, policy=seed_policy_with(TEAM))


async def run(rt: Runtime) -> int:
    """Fire every due timer (the engine, without its loop)."""
    return await Worker(rt.db, rt.clock, rt.handlers).tick()


async def declare(client: httpx.AsyncClient, token: str, severity: str, **extra: Any) -> int:
    body = {"title": "Checkout is failing", "severity": severity, "services": ["portal"], **extra}
    r = await client.post("/api/v1/incidents", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    number: int = (
        r.json()["number"] if "number" in r.json() else int(str(r.json()["id"]).removeprefix("INC-"))
    )
    return number


async def pages(rt: Runtime, incident: int) -> list[tuple[str, str]]:
    async with rt.db.session() as session:
        rows = await session.scalars(select(Page).where(Page.incident_id == incident).order_by(Page.id))
        return [(p.person, p.step) for p in rows]


async def outbox(rt: Runtime, incident: int, kind: str | None = None) -> list[OutboxMessage]:
    async with rt.db.session() as session:
        query = select(OutboxMessage).where(OutboxMessage.incident_id == incident).order_by(OutboxMessage.id)
        if kind:
            query = query.where(OutboxMessage.kind == kind)
        return list(await session.scalars(query))


async def timeline(client: httpx.AsyncClient, token: str, incident: int, kind: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/incidents/{incident}/timeline", headers=bearer(token))
    assert r.status_code == 200, r.text
    return [e["data"] for e in r.json() if e["kind"] == kind]


async def test_team_assembly_follows_the_severity(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str]
) -> None:
    p2 = await declare(client, tokens["responder"], "P2")
    p0 = await declare(client, tokens["responder"], "P0")
    await run(rt)
    assert {p for p, _ in await pages(rt, p2)} == {"alice", "bob"}  # primary + backup
    assert {p for p, _ in await pages(rt, p0)} == {"alice", "bob", "dave"}  # full team + management
    sent = [(m.channel, m.target) for m in await outbox(rt, p2, "page")]
    assert sent == [("slack", "UALICE"), ("email", "bob@example.com")]  # alice's email waits 5 min
    page = (await outbox(rt, p2, "page"))[0]
    assert (
        "/ack/" in page.payload["text"]
        and page.payload["blocks"][1]["elements"][0]["action_id"] == "tocsin_ack"
    )
    notes = await timeline(client, tokens["viewer"], p2, "page")
    assert [n["person"] for n in notes] == ["alice", "bob"]
    channels = await outbox(rt, p0, "channel")
    assert channels[0].payload["op"] == "create_channel" and channels[0].payload["invite"] == ["UALICE"]
    announce = await outbox(rt, p0, "announce")
    assert announce[0].target == "#haus-of-basquiat-alerts" and announce[0].thread == f"announce:{p0}"


async def test_a_delayed_rule_goes_out_only_if_still_unacknowledged(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    first = await declare(client, tokens["responder"], "P2")
    second = await declare(client, tokens["responder"], "P2", title="Search is slow")
    await run(rt)
    r = await client.post(
        f"/api/v1/incidents/{second}/acknowledge", json={}, headers=bearer(tokens["responder"])
    )
    assert r.status_code == 200, r.text
    clock.advance(timedelta(minutes=5))
    await run(rt)
    assert [m.channel for m in await outbox(rt, first, "page") if m.person == "alice"] == ["slack", "email"]
    assert [m.channel for m in await outbox(rt, second, "page") if m.person == "alice"] == ["slack"]


async def test_unacknowledged_pages_climb_the_technical_chain(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P1")
    await run(rt)
    clock.advance(timedelta(minutes=30))  # P1 response: 30 min
    await run(rt)
    assert ("alice", "escalation:technical:0:0") in await pages(rt, inc)
    clock.advance(timedelta(minutes=15))
    await run(rt)
    assert ("bob", "escalation:technical:0:1") in await pages(rt, inc)
    r = await client.post(
        f"/api/v1/incidents/{inc}/acknowledge", json={}, headers=bearer(tokens["responder"])
    )
    assert r.status_code == 200
    clock.advance(timedelta(minutes=15))
    await run(rt)
    assert not any(person == "carol" for person, _ in await pages(rt, inc))  # acknowledged: the chain stops
    notes = await timeline(client, tokens["viewer"], inc, "escalation")
    assert notes[0]["started"] == "unacknowledged" and "stopped" in notes[-1]
    r = await client.get(f"/api/v1/incidents/{inc}/paging", headers=bearer(tokens["viewer"]))
    assert r.json()["escalations"][0]["finished_at"] is not None


async def test_unresolved_incidents_escalate_on_both_chains_and_skip_empty_steps(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P0")
    await run(rt)
    await client.post(f"/api/v1/incidents/{inc}/acknowledge", json={}, headers=bearer(tokens["responder"]))
    clock.advance(timedelta(minutes=30))  # P0 unresolved after 30 min
    await run(rt)
    for _ in range(2):
        clock.advance(timedelta(minutes=15))
        await run(rt)
    paged = await pages(rt, inc)
    assert ("alice", "escalation:technical:0:0") in paged and ("carol", "escalation:technical:0:2") in paged
    assert ("erin", "escalation:business:0:0") in paged and ("dave", "escalation:business:0:1") in paged
    notes = await timeline(client, tokens["viewer"], inc, "escalation")
    assert any(n.get("skipped") == "nobody is on call for CEO" for n in notes)  # no CEO among the people
    assert sum("exhausted" in n for n in notes) == 2


async def test_a_flapping_alert_reopens_its_incident_and_pages_once_more(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], clock: FakeClock
) -> None:
    """An alert that clears before anyone acknowledges it resolves its incident; when it comes back within
    the group window (10 min) the incident reopens, triggered, and its team is paged once more, rather
    than an incident and a page every flap. Reopened, it waits for an acknowledgement: further flaps
    page nobody."""
    r = await client.post(
        "/api/v1/integrations",
        json={"name": "checks", "kind": "generic", "service": "portal"},
        headers=bearer(tokens["admin"]),
    )
    key = r.json()["key"]
    viewer = bearer(tokens["viewer"])

    async def send(status: str, dedup_key: str = "checkout") -> dict[str, Any]:
        body = {
            "summary": "Checkout failing",
            "severity": "warning",
            "dedup_key": dedup_key,
            "status": status,
        }
        r = await client.post("/api/v1/integrations/generic", json=body, headers=bearer(key))
        assert r.status_code == 202, r.text
        return dict(r.json())

    async def incident(number: int) -> dict[str, Any]:
        return dict((await client.get(f"/api/v1/incidents/{number}", headers=viewer)).json())

    first = await send("firing")
    inc = int(first["incident"].removeprefix("INC-"))
    await run(rt)
    assert await pages(rt, inc) == [("alice", "assembly"), ("bob", "assembly")]  # P2: primary and backup
    clock.advance(minutes=2)
    await send("resolved")
    got = await incident(inc)
    assert (got["status"], got["resolved_itself"], got["flaps"]) == ("resolved", True, 0)

    clock.advance(minutes=3)
    again = await send("firing")  # back: the same incident, reopened, with a new alert
    assert again["incident"] == first["incident"] and again["alert_id"] != first["alert_id"]
    got = await incident(inc)
    assert (got["status"], got["resolved_itself"], got["flaps"]) == ("triggered", False, 1)
    assert got["acknowledged_at"] is None and got["resolved_at"] is None
    await run(rt)
    assert await pages(rt, inc) == [
        ("alice", "assembly"),
        ("bob", "assembly"),
        ("alice", "assembly:reopened 1"),
        ("bob", "assembly:reopened 1"),
    ]
    changes = await timeline(client, tokens["viewer"], inc, "status_change")
    assert changes[-1]["reopened"] is True and changes[-1]["flapping"] == 1
    assert (
        changes[-1]["note"]
        == "alert 'Checkout failing' is back 3m after the incident resolved itself: flapping"
    )

    for _ in range(2):  # it flaps on: the incident stays open, and nobody is paged again
        clock.advance(minutes=1)
        await send("resolved")
        assert (await incident(inc))["status"] == "triggered"
        clock.advance(minutes=1)
        await send("firing")
    await run(rt)
    assert len(await pages(rt, inc)) == 4
    notes = await timeline(client, tokens["viewer"], inc, "alert")
    assert sum("flapping" in n for n in notes) == 2
    assert [i["number"] for i in (await client.get("/api/v1/incidents", headers=viewer)).json()["items"]] == [
        inc
    ]

    # Acknowledged and resolved by people: the next alert opens a new incident.
    responder = bearer(tokens["responder"])
    assert (await client.post(f"/api/v1/incidents/{inc}/acknowledge", json={}, headers=responder)).is_success
    await send("resolved")
    assert (await client.post(f"/api/v1/incidents/{inc}/resolve", json={}, headers=responder)).is_success
    second = int((await send("firing"))["incident"].removeprefix("INC-"))
    assert second != inc
    # One that resolved itself longer than the group window ago is not reopened either.
    await send("resolved")
    assert (await incident(second))["resolved_itself"] is True
    clock.advance(minutes=11)
    third = int((await send("firing"))["incident"].removeprefix("INC-"))
    assert third not in (inc, second)
    assert (await incident(second))["status"] == "resolved"


async def test_raising_the_severity_pages_whoever_it_adds(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P3")
    await run(rt)
    assert await pages(rt, inc) == [("alice", "assembly")]
    r = await client.post(
        f"/api/v1/incidents/{inc}/severity",
        json={"severity": "P0", "reason": "all down"},
        headers=bearer(tokens["responder"]),
    )
    assert r.status_code == 200, r.text
    await run(rt)
    assert sorted(await pages(rt, inc)) == [("alice", "assembly"), ("bob", "assembly"), ("dave", "assembly")]
    r = await client.get(f"/api/v1/incidents/{inc}/paging", headers=bearer(tokens["viewer"]))
    due = {t["kind"]: t["due_at"] for t in r.json()["timers"] if t["fired_at"] is None}
    # re-planned for P0: respond within 15 min, escalate after 30 (P3 had next business day, no escalation)
    assert (
        due["incident.response"] == "2026-11-24T15:15:00Z"
        and due["incident.escalate"] == "2026-11-24T15:30:00Z"
    )


async def test_escalate_now(client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str]) -> None:
    inc = await declare(client, tokens["responder"], "P2")
    await run(rt)
    r = await client.post(
        f"/api/v1/incidents/{inc}/escalate",
        json={"reason": "need the database expert"},
        headers=bearer(tokens["responder"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["escalations"][0]["chain"] == "technical"
    r = await client.post(f"/api/v1/incidents/{inc}/escalate", json={}, headers=bearer(tokens["responder"]))
    assert ("bob", "escalation:technical:0:1") in await pages(rt, inc)  # the next step at once
    r = await client.post(
        f"/api/v1/incidents/{inc}/escalate", json={"chain": "nope"}, headers=bearer(tokens["responder"])
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "chain"
    r = await client.post(f"/api/v1/incidents/{inc}/escalate", json={}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 403


async def test_acknowledge_from_the_signed_link(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P1")
    await run(rt)
    text = (await outbox(rt, inc, "page"))[0].payload["text"]
    link = next(w for w in text.split() if "/ack/" in w).removeprefix("https://tocsin.example")
    r = await client.get(link)
    assert r.status_code == 200 and "Acknowledge INC-" in r.text
    r = await client.get(link.replace("sig=", "sig=0"))
    assert r.status_code == 403
    r = await client.post(link)
    assert r.status_code == 200 and "Acknowledged." in r.text
    r = await client.get(f"/api/v1/incidents/{inc}", headers=bearer(tokens["viewer"]))
    assert r.json()["status"] == "acknowledged"
    r = await client.get(f"/api/v1/incidents/{inc}/paging", headers=bearer(tokens["viewer"]))
    assert {p["acknowledged_via"] for p in r.json()["pages"]} == {"link"}


def slack_request(body: bytes, secret: str = SLACK_SECRET, at: int | None = None) -> dict[str, str]:
    stamp = str(at if at is not None else int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def test_acknowledge_from_the_slack_button(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P1")
    await run(rt)
    page = (await outbox(rt, inc, "page"))[0]
    value = page.payload["blocks"][1]["elements"][0]["value"]
    payload = {
        "type": "block_actions",
        "user": {"id": "UALICE"},
        "actions": [{"action_id": "tocsin_ack", "value": value}],
    }
    body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    r = await client.post(
        "/api/v1/slack/interactions", content=body, headers=slack_request(body, secret="wrong")
    )
    assert r.status_code == 401
    r = await client.post(
        "/api/v1/slack/interactions", content=body, headers=slack_request(body, at=int(time.time()) - 3600)
    )
    assert r.status_code == 401  # a replay an hour later
    r = await client.post("/api/v1/slack/interactions", content=body, headers=slack_request(body))
    assert r.status_code == 200 and r.json()["text"].startswith("Acknowledged")
    events = await timeline(client, tokens["viewer"], inc, "status_change")
    assert events[-1]["to"] == "acknowledged"
    r = await client.get(f"/api/v1/incidents/{inc}/timeline", headers=bearer(tokens["viewer"]))
    assert [e["actor"] for e in r.json() if e["kind"] == "status_change"] == ["alice"]


async def test_reminders_for_updates_the_status_page_and_meetings(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P1", commander="erin")
    await run(rt)
    clock.advance(timedelta(minutes=20))  # status page due at 30 min: first reminder 10 min before
    await run(rt)
    reminders = await outbox(rt, inc, "reminder")
    assert any("status page update is due in 10m" in m.payload["text"] for m in reminders)
    clock.advance(timedelta(minutes=10))  # 30 min: management update due (P1), status page now due
    await run(rt)
    r = await client.get(f"/api/v1/incidents/{inc}", headers=bearer(tokens["viewer"]))
    texts = [m.payload["text"] for m in await outbox(rt, inc, "reminder") if m.person == "erin"]
    assert any("management update was due" in t for t in texts)
    r = await client.post(
        f"/api/v1/incidents/{inc}/updates", json={"text": "Rolling back"}, headers=bearer(tokens["responder"])
    )
    assert r.status_code == 201
    before = len(await outbox(rt, inc, "reminder"))
    clock.advance(timedelta(minutes=10))
    await run(rt)
    after = [m.payload["text"] for m in (await outbox(rt, inc, "reminder"))[before:]]
    assert after and not any("management update" in t for t in after)  # posted: only the status page nags
    clock.advance(timedelta(minutes=80))  # 2 h: a status meeting for an extended incident
    await run(rt)
    invites = await outbox(rt, inc, "meeting")
    assert {m.person for m in invites} >= {"erin", "alice", "bob", "dave"}
    ics = invites[0].payload["attachments"][0]["content"]
    assert (
        ics.startswith("BEGIN:VCALENDAR\r\n") and "METHOD:REQUEST" in ics and "\r\nEND:VCALENDAR\r\n" in ics
    )
    async with rt.db.session() as session:
        from tocsin.incidents.models import Incident

        row = await session.get(Incident, inc)
        assert row is not None and row.missed_updates >= 1


async def test_the_stability_watch_holds_resolution(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P2")
    h = bearer(tokens["responder"])
    r = await client.post(f"/api/v1/incidents/{inc}/status", json={"status": "monitoring"}, headers=h)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/incidents/{inc}/resolve", json={"summary": "fixed"}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["field"] == "override_reason"
    assert "stability watch" in r.json()["error"]["message"]
    clock.advance(timedelta(minutes=15))
    await run(rt)
    notes = await timeline(client, tokens["viewer"], inc, "reminder")
    assert any(n.get("reminder") == "stability watch passed" for n in notes)
    r = await client.post(f"/api/v1/incidents/{inc}/resolve", json={"summary": "fixed"}, headers=h)
    assert r.status_code == 200, r.text
    other = await declare(client, tokens["responder"], "P2", title="Again")
    await client.post(f"/api/v1/incidents/{other}/status", json={"status": "mitigated"}, headers=h)
    r = await client.post(
        f"/api/v1/incidents/{other}/resolve",
        json={"summary": "x", "override_reason": "false alarm"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    events = await timeline(client, tokens["viewer"], other, "status_change")
    assert events[-1]["override"] == "false alarm"


async def test_nobody_on_call_is_said_not_silent(
    client: httpx.AsyncClient, db: Database, clock: FakeClock, tokens: dict[str, str]
) -> None:
    from tocsin.app import create_app

    plain = build_runtime(Settings(database_url=db.url), clock=clock, db=db)  # the seed: no people
    app = create_app(runtime=plain)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        inc = await declare(c, tokens["responder"], "P0")
        await run(plain)
        notes = await timeline(c, tokens["viewer"], inc, "page")
        assert "nobody is on call" in notes[0]["nobody"]
        for _ in range(3):  # P0: unacknowledged at 15 min, then a step every 15 min
            clock.advance(timedelta(minutes=15))
            await run(plain)
        notes = await timeline(c, tokens["viewer"], inc, "escalation")
        assert [n["skipped"] for n in notes if "skipped" in n and n["chain"] == "technical"] == [
            "nobody is on call for Senior Engineer",
            "nobody is on call for Engineering Manager",
            "nobody is on call for CTO",
        ]
        assert "exhausted" in notes[-1] or any("exhausted" in n for n in notes)


async def test_timers_that_fire_late_say_so(
    client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["responder"], "P1")
    await run(rt)
    clock.advance(timedelta(hours=3))  # the engine was down
    await run(rt)
    notes = await timeline(client, tokens["viewer"], inc, "reminder")
    response = next(n for n in notes if n.get("deadline") == "response")
    assert response["late_by"] == "2h30m"
    assert sum(1 for n in notes if n.get("reminder") == "status meeting") == 1  # once, not per missed one


async def test_two_workers_page_each_person_once(
    db: Database, rt: Runtime, client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """Three timer workers on one database, each with its own engine (as `tocsin serve --workers` runs
    them): on PostgreSQL claims skip locked rows, on SQLite each claim holds the file's write lock."""
    import asyncio

    incidents = [await declare(client, tokens["responder"], "P0", title=f"Outage {i}") for i in range(30)]
    dbs = [Database(db.url) for _ in range(3)]
    try:
        await asyncio.gather(*(Worker(d, rt.clock, rt.handlers, batch=7).tick() for d in dbs))
    finally:
        for d in dbs:
            await d.dispose()
    for inc in incidents:
        assert sorted(await pages(rt, inc)) == [
            ("alice", "assembly"),
            ("bob", "assembly"),
            ("dave", "assembly"),
        ]
        # alice on Slack and bob by email at once; dave's only contact (email) comes 5 min later by default
        assert sorted(m.person or "" for m in await outbox(rt, inc, "page")) == ["alice", "bob"]
