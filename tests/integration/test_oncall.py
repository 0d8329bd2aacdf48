"""On-call over the database and the API: overrides, now/next, page targets, escalation steps, iCal feeds."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from tocsin.app import build_runtime, create_app
from tocsin.auth.roles import Role
from tocsin.cli.main import app as cli
from tocsin.config import Settings
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.db.engine import Database
from tocsin.engine import secrets
from tocsin.oncall import service
from tocsin.policy.models import EscalationStep, Policy
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, seed_policy_with, served, user_with_token

NY = ZoneInfo("America/New_York")
ONCALL = """
people:
  - {name: alice, full_name: Alice Ng, email: alice@example.com, titles: [Senior Engineer]}
  - {name: bob, email: bob@example.com, titles: [Senior Engineer]}
  - {name: carol, email: carol@example.com, titles: [Engineering Manager]}
  - {name: dave, email: dave@example.com, titles: [CTO, Senior Engineer]}
teams:
  - name: portal
    title: Portal on-call
    services: [portal]
    rotations:
      - {name: portal-primary, layer: primary, members: [alice, bob], handoff: weekly, start: "2026-10-26 09:00"}
      - {name: portal-backup, layer: backup, members: [bob, alice], handoff: weekly, start: "2026-10-26 09:00"}
      - name: portal-office
        layer: backup
        members: [carol]
        handoff: daily
        start: "2026-11-02 09:00"
        active: {from: "09:00", to: "17:00", days: [mon, tue, wed, thu, fri]}
  - name: execs
    rotations:
      - {name: execs-management, layer: management, members: [dave], handoff: weekly, start: "2026-10-26 09:00"}
"""
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # Thursday 10:00 EST; alice has primary this week (Nov 23-30)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY).astimezone(UTC)


@pytest.fixture
def policy() -> Policy:
    return seed_policy_with(ONCALL)


@pytest.fixture
def rt(db: Database, clock: FakeClock, policy: Policy) -> Runtime:
    clock.set(NOW)
    return build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy)


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime=rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as c:
        yield c


async def override(rt: Runtime, rotation: str, person: str, start: str, end: str) -> int:
    async with rt.db.transaction() as session:
        row = await service.create_override(
            session, rt.clock, rt.policy, "ada", rotation, person, local(start), local(end), "swap"
        )
        return row.id


async def test_overrides_are_stored_listed_and_deleted(rt: Runtime) -> None:
    first = await override(rt, "portal-primary", "carol", "2026-11-26 20:00", "2026-11-27 08:00")
    await override(rt, "portal-backup", "dave", "2026-12-01 00:00", "2026-12-02 00:00")
    async with rt.db.session() as session:
        rows = await service.overrides(session, NOW, NOW + timedelta(days=30))
        assert [r.rotation for r in rows] == ["portal-primary", "portal-backup"]
        assert [
            r.person
            for r in await service.overrides(session, NOW, NOW + timedelta(days=30), ["portal-backup"])
        ] == ["dave"]
        assert await service.overrides(session, local("2026-11-27 08:00"), local("2026-11-30 00:00")) == []
    async with rt.db.transaction() as session:
        deleted = await service.delete_override(session, rt.clock, first)
        assert deleted.deleted_at == NOW
    async with rt.db.session() as session:
        assert [r.person for r in await service.overrides(session, NOW, NOW + timedelta(days=30))] == ["dave"]
    async with rt.db.transaction() as session:
        with pytest.raises(NotFound):
            await service.delete_override(session, rt.clock, first)


@pytest.mark.parametrize(
    ("rotation", "person", "start", "end", "field"),
    [
        ("nightly", "alice", "2026-11-27 00:00", "2026-11-28 00:00", "rotation"),
        ("portal-primary", "zed", "2026-11-27 00:00", "2026-11-28 00:00", "person"),
        ("portal-primary", "bob", "2026-11-28 00:00", "2026-11-27 00:00", "ends_at"),
        ("portal-primary", "bob", "2026-11-27 00:00", "2027-03-01 00:00", "ends_at"),
        ("portal-primary", "bob", "2026-11-20 00:00", "2026-11-21 00:00", "ends_at"),
    ],
)
async def test_bad_overrides_name_the_field(
    rt: Runtime, rotation: str, person: str, start: str, end: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await override(rt, rotation, person, start, end)
    assert caught.value.field == field


async def test_now_and_next(rt: Runtime) -> None:
    async with rt.db.session() as session:
        teams = await service.on_call_now(session, rt.policy, NOW)
    portal = teams[0]
    assert [layer.layer for layer in portal.layers] == ["primary", "backup"]
    primary = portal.layers[0].rotations[0]
    assert (primary.person, primary.full_name, primary.override) == ("alice", "Alice Ng", False)
    assert primary.since == local("2026-11-23 09:00") and primary.until == local("2026-11-30 09:00")
    assert (primary.next_person, primary.next_at) == ("bob", local("2026-11-30 09:00"))
    office = portal.layers[1].rotations[1]
    assert office.person == "carol" and office.until == local("2026-11-26 17:00")
    assert office.next_person is None  # only carol: no different person comes next
    await override(rt, "portal-primary", "carol", "2026-11-26 20:00", "2026-11-27 08:00")
    async with rt.db.session() as session:
        (portal,) = await service.on_call_now(session, rt.policy, NOW, team="portal")
        primary = portal.layers[0].rotations[0]
        assert (primary.next_person, primary.next_at, primary.until) == (
            "carol",
            local("2026-11-26 20:00"),
            local("2026-11-26 20:00"),
        )
        (portal,) = await service.on_call_now(session, rt.policy, local("2026-11-26 21:00"), team="portal")
        assert portal.layers[0].rotations[0].person == "carol" and portal.layers[0].rotations[0].override
        with pytest.raises(InvalidInput):
            await service.on_call_now(session, rt.policy, NOW, team="nope")


async def test_page_targets_by_severity(rt: Runtime) -> None:
    team = service.team_for(rt.policy, ["portal"])
    assert team is not None and team.name == "portal"
    assert service.team_for(rt.policy, ["unknown"]) is rt.policy.teams[0]  # the first team is the fallback
    async with rt.db.session() as session:
        p3 = await service.resolve_page_targets(session, rt.policy, NOW, team, ["primary"])
        p2 = await service.resolve_page_targets(session, rt.policy, NOW, team, ["primary", "backup"])
        p0 = await service.resolve_page_targets(session, rt.policy, NOW, team, ["full_team", "management"])
        night = await service.resolve_page_targets(
            session, rt.policy, local("2026-11-26 22:00"), team, ["backup"]
        )
        nobody = await service.resolve_page_targets(session, rt.policy, NOW, None, ["primary", "full_team"])
    assert [p for p, _ in p3] == ["alice"]
    assert "primary" in p3[0][1] and "portal-primary" in p3[0][1]
    assert [p for p, _ in p2] == ["alice", "bob", "carol"]
    assert [p for p, _ in p0] == ["alice", "bob", "carol", "dave"]
    assert [p for p, _ in night] == ["bob"]  # office hours are over
    assert nobody == []


async def test_page_targets_with_nobody_in_the_policy(db: Database, clock: FakeClock) -> None:
    rt = build_runtime(Settings(database_url=db.url), clock=clock, db=db)
    team = service.team_for(rt.policy, ["portal"])
    assert team is None
    async with rt.db.session() as session:
        assert (
            await service.resolve_page_targets(session, rt.policy, NOW, team, ["full_team", "management"])
            == []
        )
        step = rt.policy.escalation_chains["technical"].steps[0]
        assert await service.resolve_step(session, rt.policy, NOW, step, team) == []


async def test_escalation_steps(rt: Runtime) -> None:
    team = service.team_for(rt.policy, ["portal"])
    async with rt.db.session() as session:

        async def step(**fields: str) -> list[str]:
            return await service.resolve_step(
                session, rt.policy, NOW, EscalationStep.model_validate(fields), team
            )

        assert await step(role="Senior Engineer") == ["alice", "bob"]  # the team's own, not dave
        assert await step(role="CTO") == ["dave"]
        assert await step(role="CEO") == []
        assert await step(role="X", person="carol") == ["carol"]
        assert await step(role="X", rotation="portal-primary") == ["alice"]
        assert await step(role="X", team="portal") == ["alice", "bob", "carol"]
        assert await step(role="X", channel="#portal-leads") == []
    assert service.person(rt.policy, "alice") is not None and service.person(rt.policy, "zed") is None


# The API


async def test_oncall_api(rt: Runtime, client: httpx.AsyncClient) -> None:
    viewer = await user_with_token(rt.db, rt.clock, "vera", Role.viewer)  # type: ignore[arg-type]
    r = await client.get("/api/v1/oncall", headers=bearer(viewer))
    assert r.status_code == 200, r.text
    body = r.json()
    primary = body["teams"][0]["layers"][0]["rotations"][0]
    assert (primary["person"], primary["next_person"]) == ("alice", "bob")
    r = await client.get(
        "/api/v1/oncall", params={"team": "portal", "at": "2026-11-30T10:00:00-05:00"}, headers=bearer(viewer)
    )
    assert r.json()["teams"][0]["layers"][0]["rotations"][0]["person"] == "bob"
    r = await client.get("/api/v1/oncall", params={"team": "nope"}, headers=bearer(viewer))
    assert r.status_code == 422 and r.json()["error"]["field"] == "team"
    r = await client.get("/api/v1/oncall", params={"at": "2026-11-30T10:00:00"}, headers=bearer(viewer))
    assert r.status_code == 422 and r.json()["error"]["field"] == "at"
    assert (await client.get("/api/v1/oncall")).status_code == 401


async def test_override_api_needs_a_commander(rt: Runtime, client: httpx.AsyncClient) -> None:
    clock = rt.clock
    responder = await user_with_token(rt.db, clock, "rita", Role.responder)  # type: ignore[arg-type]
    commander = await user_with_token(rt.db, clock, "ada", Role.commander)  # type: ignore[arg-type]
    body = {
        "rotation": "portal-primary",
        "person": "carol",
        "starts_at": "2026-11-26T20:00:00-05:00",
        "ends_at": "2026-11-27T08:00:00-05:00",
        "note": "I'll take Thursday night",
    }
    assert (await client.post("/api/v1/overrides", json=body, headers=bearer(responder))).status_code == 403
    r = await client.post("/api/v1/overrides", json=body, headers=bearer(commander))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["created_by"] == "ada" and created["note"] == "I'll take Thursday night"
    listed = (await client.get("/api/v1/overrides", headers=bearer(responder))).json()
    assert [o["id"] for o in listed] == [created["id"]]
    r = await client.get(
        "/api/v1/oncall", params={"at": "2026-11-26T21:00:00-05:00"}, headers=bearer(responder)
    )
    assert r.json()["teams"][0]["layers"][0]["rotations"][0]["person"] == "carol"
    bad = {**body, "person": "zed"}
    r = await client.post("/api/v1/overrides", json=bad, headers=bearer(commander))
    assert r.status_code == 422 and r.json()["error"]["field"] == "person"
    r = await client.post(
        "/api/v1/overrides", json={**body, "ends_at": "2026-11-27T08:00:00"}, headers=bearer(commander)
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "ends_at"
    assert (
        await client.delete(f"/api/v1/overrides/{created['id']}", headers=bearer(responder))
    ).status_code == 403
    r = await client.delete(f"/api/v1/overrides/{created['id']}", headers=bearer(commander))
    assert r.status_code == 200
    assert (await client.get("/api/v1/overrides", headers=bearer(responder))).json() == []
    r = await client.delete(f"/api/v1/overrides/{created['id']}", headers=bearer(commander))
    assert r.status_code == 404


async def test_rotations_with_gaps_and_calendar_feeds(rt: Runtime, client: httpx.AsyncClient) -> None:
    viewer = await user_with_token(rt.db, rt.clock, "vera", Role.viewer)  # type: ignore[arg-type]
    body = (await client.get("/api/v1/rotations", headers=bearer(viewer))).json()
    by_name = {r["name"]: r for r in body["rotations"]}
    assert by_name["portal-primary"]["gaps"] == [] and by_name["portal-primary"]["handoff"] == "weekly"
    assert by_name["portal-office"]["gaps"][0]["starts_at"].startswith("2026-11-26T22:00")
    assert {t["team"]: t["primary_gaps"] for t in body["teams"]}["portal"] == []
    assert any("execs" in w and "no primary rotation" in w for w in body["warnings"])
    url = httpx.URL(by_name["portal-primary"]["calendar_url"])
    assert url.path == "/api/v1/rotations/portal-primary/calendar.ics"
    key = await secrets.signing_key(rt.db, rt.settings.secret_key)
    assert secrets.verify(key, url.params["token"], "calendar", "portal-primary")

    r = await client.get(url.path, params={"token": url.params["token"]})  # no bearer token: a calendar app
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    text = r.content.decode()
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert "SUMMARY:alice on call (portal-primary)" in text
    assert "DTSTART:20261123T140000Z" in text  # 09:00 EST, in UTC
    assert text.count("BEGIN:VEVENT") == 11  # 2 weeks back to 8 weeks ahead, weekly, clipped at both ends
    for needle in ("UID:", "DTSTAMP:20261126T150000Z", "DTEND:"):
        assert needle in text

    wrong = await client.get(url.path, params={"token": "0" * 64})
    assert wrong.status_code == 403
    other = await client.get(
        "/api/v1/rotations/portal-backup/calendar.ics", params={"token": url.params["token"]}
    )
    assert other.status_code == 403  # a token opens one rotation's feed only
    assert (await client.get(url.path)).status_code == 401
    assert (await client.get(url.path, headers=bearer(viewer))).status_code == 200
    assert (
        await client.get("/api/v1/rotations/nope/calendar.ics", headers=bearer(viewer))
    ).status_code == 404


# The CLI, against a real server


def test_cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    seed = re.sub(r"^(people|teams): \[\]\n", "", seed, flags=re.M)
    policy_file = tmp_path / "tocsin.yaml"
    policy_file.write_text(seed + ONCALL.replace("2026-10-26", "2020-01-06"), encoding="utf-8")
    monkeypatch.setenv("TOCSIN_POLICY", str(policy_file))
    admin = "tok_oncall_cli_admin"
    runner = CliRunner()
    with served(database_url, admin) as url:
        env = {"TOCSIN_URL": url, "TOCSIN_TOKEN": admin, "COLUMNS": "200"}

        def run(*args: str) -> str:
            result = runner.invoke(cli, ["oncall", *args], env=env)
            assert result.exit_code == 0, result.output
            return result.output

        teams = json.loads(run("now", "--json"))["teams"]
        assert teams[0]["layers"][0]["rotations"][0]["person"] in ("alice", "bob")
        assert "portal-primary" in run("now", "--team", "portal")
        start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        end = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        created = json.loads(
            run("override", "portal-primary", "carol", "--start", start, "--end", end, "--json")
        )
        assert created["person"] == "carol" and created["created_by"] == "admin"
        assert "carol" in run("overrides")
        listing = run("rotations")
        assert "portal-primary calendar: http" in listing and "calendar.ics?token=" in listing
        assert "deleted" in run("delete-override", str(created["id"]))
        assert "No current or future overrides" in run("overrides")
        bad = runner.invoke(
            cli, ["oncall", "override", "portal-primary", "zed", "--start", start, "--end", end], env=env
        )
        assert bad.exit_code == 1 and 'unknown person "zed"' in bad.output


# The console page

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def signed_in(rt: Runtime, client: httpx.AsyncClient, name: str, role: Role) -> str:
    """Sign `name` in to the console; returns the page's CSRF token."""
    await user_with_token(rt.db, rt.clock, name, role, password="correct horse battery")  # type: ignore[arg-type]
    form = await client.get("/login")
    match = CSRF.search(form.text)
    assert match, form.text
    data = {"name": name, "password": "correct horse battery", "csrf_token": match[1], "next": "/oncall"}
    assert (await client.post("/login", data=data)).status_code == 303
    page = await client.get("/oncall")
    token = CSRF.search(page.text)
    assert token, page.text
    return token[1]


async def test_console_page_shows_on_call_gaps_and_takes_overrides(
    rt: Runtime, client: httpx.AsyncClient
) -> None:
    csrf = await signed_in(rt, client, "ada", Role.commander)
    page = (await client.get("/oncall")).text
    assert "Portal on-call" in page and "Alice Ng" in page and 'href="/oncall" aria-current="page"' in page
    # execs have no primary layer: their whole 4 weeks are one gap, in words, and a warning says why
    assert "Gap in primary on-call" in page
    assert "Gap: 2026-11-26 10:00 EST to 2026-12-24 10:00 EST" in page
    assert "has no primary rotation" in page
    form = {
        "csrf_token": csrf,
        "rotation": "portal-primary",
        "person": "carol",
        "starts_at": "2026-11-26T09:30",
        "ends_at": "2026-11-26T12:00",
        "note": "swap",
    }
    r = await client.post("/oncall/overrides", data=form)
    assert r.status_code == 303, r.text
    page = (await client.get("/oncall")).text
    row = page[page.index('data-rotation="portal-primary"') :].split("</tr>")[0]
    assert "carol" in row and "override" in row
    bad = await client.post("/oncall/overrides", data={**form, "ends_at": "2026-11-26T09:00"})
    assert bad.status_code == 422 and "ends_at must be after starts_at" in bad.text
    forged = await client.post("/oncall/overrides", data={**form, "csrf_token": "x"})
    assert forged.status_code == 403
    (created,) = await _listed(rt)
    r = await client.post(f"/oncall/overrides/{created}/delete", data={"csrf_token": csrf})
    assert r.status_code == 303 and await _listed(rt) == []


async def _listed(rt: Runtime) -> list[int]:
    async with rt.db.session() as session:
        return [
            o.id for o in await service.overrides(session, NOW - timedelta(days=1), NOW + timedelta(days=30))
        ]


async def test_viewers_see_the_page_without_the_form(rt: Runtime, client: httpx.AsyncClient) -> None:
    csrf = await signed_in(rt, client, "vera", Role.viewer)
    page = (await client.get("/oncall")).text
    assert "Alice Ng" in page and "Add an override" not in page
    form = {"csrf_token": csrf, "rotation": "portal-primary", "person": "carol"}
    assert (await client.post("/oncall/overrides", data=form)).status_code == 403
