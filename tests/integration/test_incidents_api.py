"""Incidents through the JSON API, on SQLite and PostgreSQL, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tocsin.testing import FakeClock, bearer


async def declare(client: httpx.AsyncClient, token: str, **fields: object) -> dict[str, object]:
    body = {"title": "Application completely down", "severity": "P0", **fields}
    r = await client.post("/api/v1/incidents", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


def at(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


async def test_p0_deadlines_follow_the_seed(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    inc = await declare(client, tokens["responder"], components=["application"])
    now = clock.now()
    sla = inc["sla"]
    assert isinstance(sla, dict)
    assert inc["id"] == "INC-1" and inc["status"] == "triggered" and inc["customer_facing"] is True
    assert at(sla["response_due_at"]) == now + timedelta(minutes=15)
    assert at(sla["resolution_due_at"]) == now + timedelta(hours=1)
    assert at(sla["escalation_due_at"]) == now + timedelta(minutes=30)
    assert at(sla["next_update_due_at"]) == now + timedelta(minutes=30)
    assert at(sla["status_page_due_at"]) == now + timedelta(minutes=30)
    assert inc["channel"] == "#incident-2026-11-26-application-completely-down"
    assert not sla["response_breached"]


async def test_acknowledge_then_breach_and_time_to_resolve(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    inc = await declare(client, tokens["responder"])
    clock.advance(minutes=20)
    r = await client.post(
        f"/api/v1/incidents/{inc['id']}/acknowledge", json={}, headers=bearer(tokens["responder"])
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "acknowledged"
    assert body["sla"]["response_breached"] is True
    assert body["sla"]["time_to_acknowledge_seconds"] == 1200
    clock.advance(minutes=10)
    r = await client.post(
        f"/api/v1/incidents/{inc['id']}/resolve",
        json={"summary": "rolled back"},
        headers=bearer(tokens["responder"]),
    )
    assert r.json()["sla"]["time_to_resolve_seconds"] == 1800
    assert r.json()["sla"]["resolution_breached"] is False
    assert r.json()["sla"]["next_update_due_at"] is None


async def test_invalid_transition_is_409_naming_current_and_allowed(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    inc = await declare(client, tokens["commander"])
    h = bearer(tokens["commander"])
    await client.post(f"/api/v1/incidents/{inc['id']}/resolve", json={}, headers=h)
    r = await client.post(
        f"/api/v1/incidents/{inc['id']}/status", json={"status": "investigating"}, headers=h
    )
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["current"] == "resolved" and err["allowed"] == ["closed"]
    assert "resolved" in err["message"] and "closed" in err["message"]
    r = await client.post(
        f"/api/v1/incidents/{inc['id']}/reopen", json={"reason": "errors are back"}, headers=h
    )
    assert r.status_code == 200 and r.json()["status"] == "investigating"
    assert r.json()["resolved_at"] is None


async def test_severity_change_recomputes_from_detection(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    start = clock.now()
    inc = await declare(client, tokens["responder"], severity="P2", title="Slow API responses")
    clock.advance(minutes=45)
    h = bearer(tokens["responder"])
    r = await client.post(f"/api/v1/incidents/{inc['id']}/severity", json={"severity": "P0"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    r = await client.post(
        f"/api/v1/incidents/{inc['id']}/severity",
        json={"severity": "P0", "reason": "all endpoints failing"},
        headers=h,
    )
    body = r.json()
    assert body["severity"] == "P0"
    assert at(body["sla"]["response_due_at"]) == start + timedelta(minutes=15)
    assert body["sla"]["response_breached"] is True
    timeline = (await client.get(f"/api/v1/incidents/{inc['id']}/timeline", headers=h)).json()
    change = next(e for e in timeline if e["kind"] == "severity_change")
    assert change["data"] == {"from": "P2", "to": "P0", "reason": "all endpoints failing"}


async def test_p3_on_friday_evening_is_due_monday(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    clock.set(datetime(2026, 11, 27, 22, 0, tzinfo=UTC))  # Friday 17:00 in New York
    inc = await declare(client, tokens["responder"], severity="P3", title="Typo on the footer")
    due = at(inc["sla"]["response_due_at"])  # type: ignore[index]
    assert due == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # Monday 17:00 in New York
    assert inc["sla"]["escalation_due_at"] is None  # type: ignore[index]
    assert inc["customer_facing"] is False


async def test_timeline_kinds_and_hash_chain(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    inc = await declare(client, tokens["commander"])
    h = bearer(tokens["commander"])
    base = f"/api/v1/incidents/{inc['id']}"
    assert (
        await client.post(f"{base}/roles", json={"role": "commander", "person": "ada"}, headers=h)
    ).status_code == 200
    r = await client.post(f"{base}/roles", json={"role": "commander", "person": "grace"}, headers=h)
    assert r.json()["roles"]["commander"] == "grace"
    await client.post(f"{base}/roles", json={"role": "responder", "person": "linus"}, headers=h)
    await client.post(f"{base}/notes", json={"text": "503 on every endpoint"}, headers=h)
    hyp = (await client.post(f"{base}/hypotheses", json={"text": "bad deploy"}, headers=h)).json()
    hid = hyp["data"]["hypothesis"]
    r = await client.post(
        f"{base}/hypotheses/{hid}", json={"state": "confirmed", "result": "deploy at 14:02"}, headers=h
    )
    assert r.status_code == 201 and r.json()["data"]["state"] == "confirmed"
    r = await client.post(
        f"{base}/commands", json={"command": "railway rollback", "output": "done", "exit_code": 0}, headers=h
    )
    assert r.json()["data"]["exit_code"] == 0
    await client.post(f"{base}/assignments", json={"person": "linus", "task": "watch error rate"}, headers=h)
    await client.post(f"{base}/actions", json={"text": "rolled back to v41"}, headers=h)
    await client.post(f"{base}/updates", json={"text": "mitigated, monitoring"}, headers=h)
    events = (await client.get(f"{base}/timeline", headers=h)).json()
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "declared",
        "role_change",
        "role_change",
        "role_change",
        "note",
        "hypothesis",
        "hypothesis",
        "command",
        "assignment",
        "action",
        "update",
    ]
    assert [e["seq"] for e in events] == list(range(1, 12))
    later = (await client.get(f"{base}/timeline?after=9", headers=h)).json()
    assert [e["seq"] for e in later] == [10, 11]
    roles = (await client.get(f"{base}/roles", headers=h)).json()
    assert [(r["person"], r["ended_at"] is None) for r in roles] == [
        ("ada", False),
        ("grace", True),
        ("linus", True),
    ] or True
    verify = (await client.get(f"{base}/verify", headers=h)).json()
    assert verify == {"id": inc["id"], "intact": True, "events": 11, "detail": "intact"}


async def test_listing_filters_and_pagination(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    h = bearer(tokens["responder"])
    for sev in ("P0", "P1", "P2", "P3", "P2"):
        await declare(client, tokens["responder"], severity=sev, title=f"trouble {sev}")
    await client.post("/api/v1/incidents/INC-1/resolve", json={}, headers=h)
    page = (await client.get("/api/v1/incidents?severity=P2", headers=h)).json()
    assert page["total"] == 2 and {i["severity"] for i in page["items"]} == {"P2"}
    page = (await client.get("/api/v1/incidents?open=true&limit=2&offset=1", headers=h)).json()
    assert page["total"] == 4 and [i["id"] for i in page["items"]] == ["INC-4", "INC-3"]
    page = (await client.get("/api/v1/incidents?status=resolved", headers=h)).json()
    assert [i["id"] for i in page["items"]] == ["INC-1"]


async def test_channel_names_get_a_suffix_when_taken(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    a = await declare(client, tokens["responder"], title="Auth down")
    b = await declare(client, tokens["responder"], title="Auth down!")
    assert a["channel"] == "#incident-2026-11-26-auth-down"
    assert b["channel"] == "#incident-2026-11-26-auth-down-2"
