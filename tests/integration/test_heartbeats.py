"""Heartbeats (dead-man's switches) with a fake clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tocsin.app import build_runtime, create_app
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.monitors import detector_jobs
from tocsin.policy import Policy, PolicyError
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, integration_key, seed_policy_with

HEARTBEATS = """
heartbeats:
  - name: nightly-backup
    interval: 1m
    component: database
    severity: P1
    description: pg_dump to object storage
  - name: report-mailer
    interval: 10m
    grace: 5m
"""


def policy_with(extra: str) -> Policy:
    return seed_policy_with(extra)


@pytest.fixture
def rt(db: Database, clock: FakeClock) -> Runtime:
    return build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy_with(HEARTBEATS))


@pytest.fixture
async def key(client: httpx.AsyncClient, tokens: dict[str, str]) -> str:
    return await integration_key(client, tokens["admin"], "cron", "heartbeat")


async def ping(client: httpx.AsyncClient, key: str, name: str = "nightly-backup") -> dict[str, Any]:
    r = await client.post(f"/api/v1/heartbeats/{name}", headers=bearer(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def alerts(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    """Every alert, open or resolved."""
    found: list[dict[str, Any]] = []
    for status in ("open", "resolved"):
        r = await client.get("/api/v1/alerts", params={"status": status}, headers=bearer(token))
        assert r.status_code == 200, r.text
        found += r.json()
    return found


async def incidents(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/incidents", headers=bearer(token))
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_on_time_pings_raise_nothing(
    client: httpx.AsyncClient, key: str, tokens: dict[str, str], clock: FakeClock, rt: Runtime
) -> None:
    for _ in range(20):
        body = await ping(client, key)
        assert body["status"] == "ok"
        assert datetime.fromisoformat(body["next_due_at"]) == clock.now() + timedelta(minutes=1)
        for _ in range(4):  # a ping every 1m50s is late but within the grace of 1m
            clock.advance(seconds=27.5)
            assert await detector_jobs.check_heartbeats(rt) == 0
    assert await alerts(client, tokens["viewer"]) == []
    listed = (await client.get("/api/v1/heartbeats", headers=bearer(tokens["viewer"]))).json()
    assert [(h["name"], h["status"], h["pings"]) for h in listed] == [
        ("nightly-backup", "up", 20),
        ("report-mailer", "new", 0),  # never pinged: not an alert
    ]


async def test_a_missed_interval_raises_one_alert_and_the_next_ping_resolves_it(
    client: httpx.AsyncClient, key: str, tokens: dict[str, str], clock: FakeClock, rt: Runtime
) -> None:
    await ping(client, key)
    clock.advance(minutes=1, seconds=59)
    assert await detector_jobs.check_heartbeats(rt) == 0  # due, but within its grace
    clock.advance(seconds=1)
    assert await detector_jobs.check_heartbeats(rt) == 1
    for _ in range(5):  # later checks while still down add nothing
        clock.advance(minutes=1)
        assert await detector_jobs.check_heartbeats(rt) == 0
    [alert] = await alerts(client, tokens["viewer"])
    assert alert["summary"] == "No heartbeat from nightly-backup for 2m (expected every 1m)"
    assert alert["status"] == "firing" and alert["severity"] == "P1" and alert["component"] == "database"
    assert (
        alert["labels"]["heartbeat"] == "nightly-backup" and alert["dedup_key"] == "heartbeat:nightly-backup"
    )
    [incident] = await incidents(client, tokens["viewer"])
    assert incident["severity"] == "P1" and incident["components"] == ["database"]
    assert incident["source"] == "monitor"

    body = await ping(client, key)
    assert body["resolved"] is True
    [alert] = await alerts(client, tokens["viewer"])
    assert alert["status"] == "resolved"
    [incident] = await incidents(client, tokens["viewer"])
    assert incident["status"] == "resolved"  # cleared before anyone acknowledged it
    assert (await ping(client, key))["resolved"] is False
    clock.advance(minutes=1)
    assert await detector_jobs.check_heartbeats(rt) == 0


async def test_state_survives_a_restart(
    client: httpx.AsyncClient, key: str, tokens: dict[str, str], clock: FakeClock, db: Database
) -> None:
    await ping(client, key)
    clock.advance(minutes=5)
    # A new process on the same database: nothing about the ping was kept in memory.
    fresh = build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy_with(HEARTBEATS))
    assert await detector_jobs.check_heartbeats(fresh) == 1
    again = build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy_with(HEARTBEATS))
    assert await detector_jobs.check_heartbeats(again) == 0
    [alert] = await alerts(client, tokens["viewer"])
    assert alert["summary"] == "No heartbeat from nightly-backup for 5m (expected every 1m)"
    transport = httpx.ASGITransport(app=create_app(runtime=again))
    async with httpx.AsyncClient(transport=transport, base_url="http://tocsin.test") as other:
        assert (await ping(other, key))["resolved"] is True
    [alert] = await alerts(client, tokens["viewer"])
    assert alert["status"] == "resolved"


async def test_ping_protocol(client: httpx.AsyncClient, key: str, clock: FakeClock) -> None:
    r = await client.get(f"/api/v1/heartbeats/report-mailer?key={key}")  # curl in a crontab
    assert r.status_code == 200
    assert r.json()["alert_at"] == (clock.now() + timedelta(minutes=15)).isoformat()
    r = await client.post("/api/v1/heartbeats/no-such-job", headers=bearer(key))
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": "not_found", "message": "no heartbeat 'no-such-job' in the policy", "field": "name"}
    }
    for headers in ({}, bearer("0" * 32)):
        r = await client.post("/api/v1/heartbeats/nightly-backup", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"


async def test_a_heartbeat_removed_from_the_policy_is_forgotten(
    client: httpx.AsyncClient, key: str, tokens: dict[str, str], clock: FakeClock, db: Database, rt: Runtime
) -> None:
    await ping(client, key)
    clock.advance(minutes=3)
    assert await detector_jobs.check_heartbeats(rt) == 1
    later = build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy_with(""))
    assert await detector_jobs.check_heartbeats(later) == 1  # nobody could ping it back: resolved
    [alert] = await alerts(client, tokens["viewer"])
    assert alert["status"] == "resolved"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  - {name: a, interval: 1m, component: apii}\n", 'heartbeat "a": unknown component "apii"'),
        ("  - {name: a, interval: 1m, severity: P7}\n", 'heartbeat "a": unknown severity "P7"'),
        ("  - {name: a, interval: 1m}\n  - {name: a, interval: 2m}\n", 'heartbeat "a" is defined twice'),
        ("  - {name: A, interval: 1m}\n", "is not a name"),
        ("  - {name: a, interval: soon}\n", "is not a duration"),
    ],
)
def test_policy_checks_heartbeats(extra: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_with("heartbeats:\n" + extra)
    assert message in str(caught.value)
    assert all(issue.field.startswith("heartbeats") for issue in caught.value.issues)
