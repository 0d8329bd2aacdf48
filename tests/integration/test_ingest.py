"""Alert ingestion over each protocol, dedup, grouping and severity, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from tocsin.alerts import inhibition, jobs, silences
from tocsin.alerts import service as alerts
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, migrated_sqlite, prometheus_integration


async def integration(client: httpx.AsyncClient, admin: str, kind: str, **extra: Any) -> str:
    r = await client.post(
        "/api/v1/integrations",
        json={"name": f"{kind}-{len(extra)}", "kind": kind, **extra},
        headers=bearer(admin),
    )
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    assert len(key) == 32
    return key


def am_alert(name: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} is failing"},
        "startsAt": "2026-11-26T14:58:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-26T15:10:00Z",
        "generatorURL": "http://prometheus.local/graph",
        "fingerprint": f"{abs(hash(name)) % 16**16:016x}",
    }


def am_webhook(*alerts_: dict[str, Any], group: str = '{}:{alertname="HighErrorRate"}') -> dict[str, Any]:
    return {
        "receiver": "tocsin",
        "status": "firing" if any(a["status"] == "firing" for a in alerts_) else "resolved",
        "alerts": list(alerts_),
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
    }


async def incidents(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get("/api/v1/incidents", headers=bearer(token))).json()[
        "items"
    ]
    return items


async def test_alertmanager_webhook_groups_dedups_and_resolves(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    key = await integration(client, tokens["admin"], "alertmanager", service="portal")
    url = f"/api/v1/integrations/alertmanager?key={key}"
    payload = am_webhook(
        am_alert("HighErrorRate", severity="warning", component="api"), am_alert("Slow", component="api")
    )
    r = await client.post(url, json=payload)
    assert r.status_code == 200, r.text
    for _ in range(3):  # repeats and the HA pair's duplicate
        assert (await client.post(url, json=payload)).status_code == 200
    found = await incidents(client, tokens["viewer"])
    assert len(found) == 1
    inc = found[0]
    assert inc["source"] == "alert" and inc["severity"] == "P2" and inc["services"] == ["portal"]
    attached = (
        await client.get(f"/api/v1/incidents/{inc['id']}/alerts", headers=bearer(tokens["viewer"]))
    ).json()
    assert sorted(a["count"] for a in attached) == [4, 4]
    resolved = am_webhook(
        am_alert("HighErrorRate", "resolved", component="api"), am_alert("Slow", "resolved", component="api")
    )
    assert (await client.post(url, json=resolved)).status_code == 200
    inc = (await client.get(f"/api/v1/incidents/{inc['id']}", headers=bearer(tokens["viewer"]))).json()
    assert inc["status"] == "resolved"  # cleared before anyone acknowledged
    kinds = [
        e["kind"]
        for e in (
            await client.get(f"/api/v1/incidents/{inc['id']}/timeline", headers=bearer(tokens["viewer"]))
        ).json()
    ]
    assert kinds == ["declared", "alert", "alert", "status_change"]


async def test_alertmanager_s_truncated_alerts_are_kept_with_the_alerts_sent(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """A receiver's max_alerts makes Alertmanager leave alerts out and say how many: the incident's
    alerts carry the count, so responders know the group is bigger than what arrived."""
    key = await integration(client, tokens["admin"], "alertmanager")
    url = f"/api/v1/integrations/alertmanager?key={key}"
    payload = {**am_webhook(am_alert("HighErrorRate"), am_alert("Slow")), "truncatedAlerts": 40}
    assert (await client.post(url, json=payload)).status_code == 200
    listed = (await client.get("/api/v1/alerts", headers=bearer(tokens["viewer"]))).json()
    assert [a["details"] for a in listed] == [{"truncatedAlerts": 40}] * 2
    for bad in ("40", -1, True):
        r = await client.post(url, json={**am_webhook(am_alert("Other")), "truncatedAlerts": bad})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"] == "truncatedAlerts must be a non-negative integer"
    plain = am_webhook(am_alert("Quiet"))
    del plain["truncatedAlerts"]  # absent (older senders): nothing added
    assert (await client.post(url, json=plain)).status_code == 200
    listed = (await client.get("/api/v1/alerts", headers=bearer(tokens["viewer"]))).json()
    assert len(listed) == 3 and sum(a["details"] == {} for a in listed) == 1


async def test_prometheus_v2_alerts_expire_when_not_resent(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock, rt: Runtime
) -> None:
    key = await integration(client, tokens["admin"], "prometheus")
    alert = {"labels": {"alertname": "InstanceDown", "severity": "critical", "component": "application"}}
    r = await client.post("/api/v2/alerts", json=[alert], headers=bearer(key))
    assert r.status_code == 200 and r.content == b""
    clock.advance(minutes=1)
    r = await client.post(f"/i/{key}/api/v2/alerts", json=[alert])  # the key in Prometheus' path_prefix
    assert r.status_code == 200
    inc = (await incidents(client, tokens["viewer"]))[0]
    assert inc["severity"] == "P0" and inc["components"] == ["application"] and inc["services"] == ["portal"]
    ack = await client.post(
        f"/api/v1/incidents/{inc['id']}/acknowledge", json={}, headers=bearer(tokens["responder"])
    )
    assert ack.status_code == 200
    clock.advance(minutes=4)
    async with rt.db.transaction() as session:
        assert await alerts.expire(session, clock, rt.policy) == 0
    clock.advance(minutes=2)
    async with rt.db.transaction() as session:
        assert await alerts.expire(session, clock, rt.policy) == 1
    listed = (
        await client.get(f"/api/v1/incidents/{inc['id']}/alerts", headers=bearer(tokens["viewer"]))
    ).json()
    assert listed[0]["status"] == "resolved" and listed[0]["count"] == 2


async def test_prometheus_v2_rejects_like_alertmanager(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    key = await integration(client, tokens["admin"], "prometheus")
    r = await client.post("/api/v2/alerts", json=[{"labels": {}}], headers=bearer(key))
    assert r.status_code == 400 and r.json() == "at least one label pair required"
    r = await client.post("/api/v2/alerts", json=[{"labels": {"a": "b"}}], headers=bearer("wrong"))
    assert r.status_code == 401 and isinstance(r.json(), str)
    r = await client.post(
        "/api/v2/alerts", content=b"[{", headers={**bearer(key), "content-type": "application/json"}
    )
    assert r.status_code == 400 and isinstance(r.json(), str)
    r = await client.post(
        "/api/v2/alerts", content=b"labels=x", headers={**bearer(key), "content-type": "text/plain"}
    )
    assert r.status_code == 415


async def test_pagerduty_events_v2(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    key = await integration(client, tokens["admin"], "pagerduty", service="portal")
    event = {
        "routing_key": key,
        "event_action": "trigger",
        "payload": {
            "summary": "Magic link emails failing",
            "source": "sendgrid",
            "severity": "error",
            "component": "email",
        },
        "links": [{"href": "https://status.sendgrid.com", "text": "SendGrid status"}],
    }
    r = await client.post("/v2/enqueue", json=event)
    assert r.status_code == 202
    body = r.json()
    assert (
        body["status"] == "success" and body["message"] == "Event processed" and len(body["dedup_key"]) == 32
    )
    inc = (await incidents(client, tokens["viewer"]))[0]
    assert inc["severity"] == "P1" and inc["status"] == "triggered"
    r = await client.post(
        "/v2/enqueue",
        json={"routing_key": key, "event_action": "acknowledge", "dedup_key": body["dedup_key"]},
    )
    assert r.status_code == 202
    inc = (await incidents(client, tokens["viewer"]))[0]
    assert inc["status"] == "acknowledged"
    r = await client.post(
        "/v2/enqueue", json={"routing_key": key, "event_action": "resolve", "dedup_key": body["dedup_key"]}
    )
    assert r.status_code == 202
    assert (await incidents(client, tokens["viewer"]))[0][
        "status"
    ] == "acknowledged"  # humans resolve what they own


async def test_pagerduty_errors_in_its_own_shape(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    key = await integration(client, tokens["admin"], "pagerduty")
    r = await client.post(
        "/v2/enqueue", json={"routing_key": key, "event_action": "trigger", "payload": {"severity": "bad"}}
    )
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert "'payload.summary' is missing or blank" in body["errors"]
    r = await client.post("/v2/enqueue", json={"routing_key": key, "event_action": "resolve"})
    assert r.status_code == 400 and "'dedup_key' is missing or blank" in r.json()["errors"]
    r = await client.post(
        "/v2/enqueue",
        json={
            "routing_key": "0" * 32,
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "s", "severity": "info"},
        },
    )
    assert r.status_code == 400 and r.json()["errors"] == ["Invalid routing key"]
    r = await client.post(
        "/v2/enqueue",
        json={"event_action": "trigger", "payload": {"summary": "s", "source": "s", "severity": "info"}},
        headers={"X-Routing-Key": key},
    )
    assert r.status_code == 202
    assert await incidents(client, tokens["viewer"]) != []


async def test_generic_webhook_and_explicit_severity(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    key = await integration(client, tokens["admin"], "generic")
    r = await client.post(
        "/api/v1/integrations/generic",
        json={
            "summary": "Checkout broken",
            "severity": "P1",
            "dedup_key": "checkout",
            "source": "synthetics",
        },
        headers=bearer(key),
    )
    assert r.status_code == 202 and r.json()["status"] == "opened" and r.json()["incident"] == "INC-1"
    r = await client.post(
        "/api/v1/integrations/generic",
        json={"dedup_key": "checkout", "status": "resolved"},
        headers=bearer(key),
    )
    assert r.json()["status"] == "resolved"
    r = await client.post(
        "/api/v1/integrations/generic", json={"summary": "x", "bogus": 1}, headers=bearer(key)
    )
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]


async def test_storm_of_alerts_opens_one_incident_and_a_later_one_a_new_incident(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    key = await integration(client, tokens["admin"], "prometheus", service="portal")
    batch = [{"labels": {"alertname": f"EndpointDown{i}", "severity": "warning"}} for i in range(1000)]
    for start in range(0, 1000, 100):
        assert (
            await client.post("/api/v2/alerts", json=batch[start : start + 100], headers=bearer(key))
        ).status_code == 200
    found = await incidents(client, tokens["viewer"])
    assert len(found) == 1
    listed = (
        await client.get(
            f"/api/v1/incidents/{found[0]['id']}/alerts?limit=1000", headers=bearer(tokens["viewer"])
        )
    ).json()
    assert len(listed) == 1000
    clock.advance(minutes=11)  # past the policy's 10 minute group window
    await client.post(
        "/api/v2/alerts", json=[{"labels": {"alertname": "Late", "severity": "warning"}}], headers=bearer(key)
    )
    assert len(await incidents(client, tokens["viewer"])) == 2


async def test_severity_rises_never_falls(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    key = await integration(client, tokens["admin"], "generic", service="portal")
    h = bearer(key)
    send = lambda **body: client.post("/api/v1/integrations/generic", json=body, headers=h)  # noqa: E731
    await send(summary="Slow responses", severity="warning", dedup_key="slow", component="api")
    await send(summary="Logins failing", severity="warning", dedup_key="auth", component="authentication")
    inc = (await incidents(client, tokens["viewer"]))[0]
    assert inc["severity"] == "P1"
    await send(summary="Minor", severity="info", dedup_key="minor", component="cdn")
    assert (await incidents(client, tokens["viewer"]))[0]["severity"] == "P1"
    timeline = (
        await client.get(f"/api/v1/incidents/{inc['id']}/timeline", headers=bearer(tokens["viewer"]))
    ).json()
    raised = [e for e in timeline if e["kind"] == "severity_change"]
    assert raised[0]["data"]["to"] == "P1" and "authentication" in raised[0]["data"]["reason"]


async def test_complete_outage_raises_to_p0(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    key = await integration(client, tokens["admin"], "generic", service="portal")
    components = sorted(rt.policy.component_names)
    for name in components:
        await client.post(
            "/api/v1/integrations/generic",
            json={"summary": f"{name} down", "severity": "warning", "dedup_key": name, "component": name},
            headers=bearer(key),
        )
    inc = (await incidents(client, tokens["viewer"]))[0]
    assert inc["severity"] == "P0"
    timeline = (
        await client.get(f"/api/v1/incidents/{inc['id']}/timeline", headers=bearer(tokens["viewer"]))
    ).json()
    assert any("complete outage" in e["data"].get("reason", "") for e in timeline)


async def test_silenced_alerts_are_recorded_but_open_nothing(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock
) -> None:
    key = await integration(client, tokens["admin"], "prometheus")
    ends = (clock.now() + timedelta(hours=1)).isoformat()
    r = await client.post(
        "/api/v1/silences",
        json={
            "matchers": [{"name": "alertname", "value": "Disk.*", "is_regex": True}],
            "ends_at": ends,
            "comment": "resizing",
        },
        headers=bearer(tokens["responder"]),
    )
    assert r.status_code == 201
    await client.post("/api/v2/alerts", json=[{"labels": {"alertname": "DiskFull"}}], headers=bearer(key))
    assert await incidents(client, tokens["viewer"]) == []
    listed = (await client.get("/api/v1/alerts", headers=bearer(tokens["viewer"]))).json()
    assert listed[0]["muted_by"] == f"silence:{r.json()['id']}"


async def test_an_alert_still_firing_when_its_silence_ends_is_unmuted_and_opens_its_incident(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], clock: FakeClock
) -> None:
    """As Alertmanager notifies an alert whose silence expires: the alert that began in the silence and
    still fires (re-sent, or never resolved) opens its incident once the silence ends; one another
    silence in force covers stays muted, now by that one."""
    key = await integration(client, tokens["admin"], "prometheus")
    responder = bearer(tokens["responder"])

    async def silence(value: str, minutes: int) -> int:
        body = {
            "matchers": [{"name": "alertname", "value": value, "is_regex": True}],
            "ends_at": (clock.now() + timedelta(minutes=minutes)).isoformat(),
            "comment": "resizing volumes",
        }
        r = await client.post("/api/v1/silences", json=body, headers=responder)
        assert r.status_code == 201
        return int(r.json()["id"])

    def firing(name: str) -> dict[str, Any]:
        ends = (clock.now() + timedelta(hours=1)).isoformat()
        return {"labels": {"alertname": name, "severity": "critical"}, "endsAt": ends}

    short, long = await silence("Disk.*", 30), await silence("DiskSlow", 120)
    sent = [firing("DiskFull"), firing("DiskSlow")]
    assert (await client.post("/api/v2/alerts", json=sent, headers=bearer(key))).status_code == 200
    assert await incidents(client, tokens["viewer"]) == []
    await jobs.expire_alerts(rt)
    assert await incidents(client, tokens["viewer"]) == []  # both silences in force: nothing changes

    clock.advance(timedelta(minutes=31))  # the short silence is over; DiskSlow's long one is not
    assert (await client.post("/api/v2/alerts", json=sent, headers=bearer(key))).status_code == 200
    assert await incidents(client, tokens["viewer"]) == []  # a re-send alone does not unmute
    await jobs.expire_alerts(rt)
    opened = await incidents(client, tokens["viewer"])
    assert [(i["title"], i["severity"]) for i in opened] == [("DiskFull", "P0")]
    listed = {
        a["labels"]["alertname"]: a for a in (await client.get("/api/v1/alerts", headers=responder)).json()
    }
    assert listed["DiskFull"]["muted_by"] is None and listed["DiskFull"]["incident"] == opened[0]["id"]
    assert listed["DiskFull"]["count"] == 2  # the same alert, not a new one
    assert listed["DiskSlow"]["muted_by"] == f"silence:{long}" and listed["DiskSlow"]["incident"] is None
    timeline = (await client.get(f"/api/v1/incidents/{opened[0]['id']}/timeline", headers=responder)).json()
    told = [e["data"] for e in timeline if e["kind"] == "alert"]
    assert told == [
        {
            "integration": told[0]["integration"],
            "opened": 1,
            "alerts": [told[0]["alerts"][0]],
            "grouped": False,
            "unmuted": [f"silence:{short}"],
        }
    ]
    assert told[0]["alerts"][0]["summary"] == "DiskFull" and told[0]["integration"].startswith("prometheus")

    # Ended early by hand: DiskSlow joins the open incident of its group and raises nothing new.
    assert (await client.delete(f"/api/v1/silences/{long}", headers=responder)).status_code == 200
    await jobs.expire_alerts(rt)
    listed = {
        a["labels"]["alertname"]: a for a in (await client.get("/api/v1/alerts", headers=responder)).json()
    }
    assert listed["DiskSlow"]["muted_by"] is None and listed["DiskSlow"]["incident"] == opened[0]["id"]
    assert len(await incidents(client, tokens["viewer"])) == 1
    await jobs.expire_alerts(rt)  # nothing left to unmute: no other note
    timeline = (await client.get(f"/api/v1/incidents/{opened[0]['id']}/timeline", headers=responder)).json()
    assert [e["data"].get("unmuted") for e in timeline if e["kind"] == "alert"] == [
        [f"silence:{short}"],
        [f"silence:{long}"],
    ]


async def test_resolving_an_incident_resolves_its_alerts_so_a_recurrence_opens_a_new_one(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """An alert left open on a resolved incident would take the next trigger of its key as a repeat:
    the problem coming back would page nobody. As in PagerDuty, resolving the incident resolves them."""
    key = await integration(client, tokens["admin"], "generic")
    responder = bearer(tokens["responder"])

    async def trigger() -> dict[str, Any]:
        body = {"summary": "Checkout failing", "severity": "critical", "dedup_key": "checkout"}
        r = await client.post("/api/v1/integrations/generic", json=body, headers=bearer(key))
        assert r.status_code == 202
        return dict(r.json())

    first = await trigger()
    assert (await trigger())["incident"] == first["incident"]  # a repeat while it is open
    r = await client.post(f"/api/v1/incidents/{first['incident']}/resolve", json={}, headers=responder)
    assert r.status_code == 200, r.text
    listed = (await client.get("/api/v1/alerts?status=resolved", headers=responder)).json()
    assert [(a["dedup_key"], a["count"]) for a in listed] == [("checkout", 2)]
    timeline = (await client.get(f"/api/v1/incidents/{first['incident']}/timeline", headers=responder)).json()
    assert [e["data"].get("alerts_resolved") for e in timeline if e["kind"] == "status_change"][-1] == 1

    again = await trigger()  # the problem is back: a new alert, and a new incident that pages
    assert again["alert_id"] != first["alert_id"] and again["incident"] != first["incident"]
    assert [i["status"] for i in await incidents(client, tokens["viewer"])] == ["triggered", "resolved"]


async def test_unknown_key_and_oversized_requests(client: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    key = await integration(client, tokens["admin"], "alertmanager")
    r = await client.post(
        "/api/v1/integrations/alertmanager", json=am_webhook(am_alert("X")), headers=bearer("nope")
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    huge = am_webhook(*[am_alert(f"A{i}") for i in range(3)])
    huge["alerts"][0]["labels"] = {f"l{i}": "x" * 4000 for i in range(300)}
    r = await client.post("/api/v1/integrations/alertmanager", json=huge, headers=bearer(key))
    assert r.status_code == 413
    r = await client.post(
        "/api/v2/alerts", json=[{"labels": {"a": str(i)}} for i in range(100_000)], headers=bearer(key)
    )
    assert r.status_code == 413
    assert await incidents(client, tokens["viewer"]) == []


@pytest.mark.parametrize("limit", [5])
async def test_rate_limit_answers_429_with_retry_after(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime, limit: int
) -> None:
    rt.policy = rt.policy.model_copy(
        update={"alerting": rt.policy.alerting.model_copy(update={"rate_limit_per_minute": limit})}
    )
    key = await integration(client, tokens["admin"], "generic")
    codes = []
    for i in range(limit + 2):
        r = await client.post("/api/v1/integrations/generic", json={"summary": f"s{i}"}, headers=bearer(key))
        codes.append(r.status_code)
    assert codes[:limit] == [202] * limit and codes[-1] == 429
    assert int(r.headers["Retry-After"]) >= 1


async def test_two_processes_seeing_a_groups_first_alerts_open_one_incident(
    rt: Runtime, database_url: str, clock: FakeClock
) -> None:
    """Two runtimes (as two `tocsin serve --workers` processes would be) share one database: on
    PostgreSQL by the group's advisory lock, on SQLite by write transactions that take the file's
    write lock before their first read."""
    from tocsin.alerts.signals import Signal
    from tocsin.app import build_runtime
    from tocsin.config import Settings

    other = build_runtime(Settings(database_url=database_url, background=False), clock=clock)
    try:
        info = await prometheus_integration(rt.db, clock, rt.policy, service="portal")
        for round_ in range(5):
            signals = [
                Signal(action="trigger", dedup_key=f"{round_}-{n}", summary=f"round {round_}")
                for n in range(2)
            ]
            await asyncio.gather(
                rt.ingestor.submit(info, [signals[0]]), other.ingestor.submit(info, [signals[1]])
            )
            clock.advance(minutes=11)  # the next round is a new group
        async with rt.db.session() as session:
            from tocsin.incidents import service as incidents

            _, total = await incidents.list_incidents(session)
        assert total == 5
    finally:
        await other.ingestor.close()
        await other.db.dispose()
        await rt.ingestor.close()


async def test_commits_in_flight_at_once_apply_every_signal_once(rt: Runtime, clock: FakeClock) -> None:
    """Two writers (as on PostgreSQL): batches commit at once, sharing groups; a job that shares an
    alert with a commit under way waits for it. Every alert is stored once with every re-send counted,
    and each group opens one incident."""
    from tocsin.alerts.pipeline import Ingestor
    from tocsin.alerts.signals import Signal

    in_flight: list[set[str]] = []
    most = 0

    class Watched(Ingestor):
        async def _commit(self, batch: Any) -> None:
            nonlocal most
            keys = {s.dedup_key for job in batch for s in job.signals}
            assert all(keys.isdisjoint(other) for other in in_flight)  # never the same alert at once
            in_flight.append(keys)
            most = max(most, len(in_flight))
            try:
                await asyncio.sleep(0.01)  # the other writer takes the jobs queued meanwhile
                await super()._commit(batch)
            finally:
                in_flight.remove(keys)

    ingestor = Watched(rt.db, rt.clock, rt.policy, rt.bus, writers=2)
    info = await prometheus_integration(rt.db, clock, rt.policy, service="portal")
    sent: dict[str, int] = {}

    def job(keys: list[str]) -> asyncio.Task[Any]:
        for key in keys:
            sent[key] = sent.get(key, 0) + 1
        signals = [
            Signal(action="trigger", dedup_key=k, summary=k, group_key=f"g{int(k[1:]) % 3}") for k in keys
        ]
        return asyncio.create_task(ingestor.submit(info, signals))

    try:
        for round_ in range(3):
            # Two waves of jobs on keys of their own (k0-k9, k10-k19), each repeating keys of its wave
            # and of the rounds before; a third wave on the first wave's keys, sent while it commits.
            jobs = [job([f"k{(j * 3 + n + round_) % 10}" for n in range(4)]) for j in range(6)]
            await asyncio.sleep(0.005)
            jobs += [job([f"k{10 + (j * 3 + n + round_) % 10}" for n in range(4)]) for j in range(6)]
            jobs += [job([f"k{(j + n) % 10}" for n in range(3)]) for j in range(4)]
            outcomes = await asyncio.gather(*jobs)
            assert all(len(o) in (3, 4) for o in outcomes)
    finally:
        await ingestor.close()
    assert most == 2
    async with rt.db.session() as session:
        from sqlalchemy import select

        from tocsin.alerts.models import Alert, AlertGroup
        from tocsin.incidents import service as incidents

        rows = (await session.execute(select(Alert.dedup_key, Alert.count, Alert.incident_id))).all()
        counted = dict((await session.execute(select(AlertGroup.incident_id, AlertGroup.alert_count))).all())
        _, total = await incidents.list_incidents(session)
    assert sorted(key for key, _, _ in rows) == sorted(sent)  # one alert per key
    assert {key: count for key, count, _ in rows} == sent
    assert total == 3 and len({incident for _, _, incident in rows}) == 3
    # every group's count has each of its alerts once, whichever commits added them side by side
    assert counted == {i: sum(1 for *_, incident in rows if incident == i) for i in counted}


async def test_a_storm_is_told_on_the_timeline_once_a_minute(
    client: httpx.AsyncClient, tokens: dict[str, str], clock: FakeClock, rt: Runtime
) -> None:
    from tocsin.alerts import jobs

    key = await integration(client, tokens["admin"], "prometheus", service="portal")
    for start in range(0, 500, 10):  # 50 requests within one second of each other
        batch = [
            {"labels": {"alertname": f"Down{i}", "severity": "warning"}} for i in range(start, start + 10)
        ]
        assert (await client.post("/api/v2/alerts", json=batch, headers=bearer(key))).status_code == 200
    path = "/api/v1/incidents/INC-1/timeline"
    told = [
        e for e in (await client.get(path, headers=bearer(tokens["viewer"]))).json() if e["kind"] == "alert"
    ]
    assert [(e["data"]["opened"], e["data"]["total"]) for e in told] == [(10, 10)]
    clock.advance(seconds=30)
    assert await jobs.expire_alerts(rt) == 0  # not quiet for a minute yet
    clock.advance(seconds=31)
    assert await jobs.expire_alerts(rt) == 1
    told = [
        e for e in (await client.get(path, headers=bearer(tokens["viewer"]))).json() if e["kind"] == "alert"
    ]
    assert [(e["data"]["opened"], e["data"]["total"]) for e in told] == [(10, 10), (490, 500)]
    clock.advance(seconds=61)
    more = [{"labels": {"alertname": "Late", "severity": "warning"}}]
    await client.post("/api/v2/alerts", json=more, headers=bearer(key))  # a quiet minute on: told at once
    told = [
        e for e in (await client.get(path, headers=bearer(tokens["viewer"]))).json() if e["kind"] == "alert"
    ]
    assert [(e["data"]["opened"], e["data"]["total"]) for e in told][-1] == (1, 501)


def test_the_expiry_sweep_finds_expired_alerts_by_index(sqlite_template: Path, tmp_path: Path) -> None:
    """Every 5 s, in a write transaction: SQLite scanning every alert there held up ingest (100-180 ms at
    170,000 open alerts). The sweep's query is answered from `ix_alerts_status_ends`."""
    migrated_sqlite(sqlite_template, tmp_path / "plan.db")
    query = alerts.expired(datetime(2026, 11, 27, tzinfo=UTC), 5000)
    sql = str(query.compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}))
    with closing(sqlite3.connect(tmp_path / "plan.db")) as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    assert any("USING INDEX ix_alerts_status_ends" in step for step in plan), plan
    assert not any(step.startswith("SCAN alerts") for step in plan), plan


def test_the_unmute_sweep_reads_only_muted_alerts(sqlite_template: Path, tmp_path: Path) -> None:
    """Also every 5 s in a write transaction: without statistics SQLite read every open alert through
    the index of statuses (65 ms at 20,000 open alerts), or walked the table in id order, instead of the
    few muted ones through their partial index."""
    migrated_sqlite(sqlite_template, tmp_path / "plan.db")
    in_force = [silences.Active(1, "silence", [])]
    for query in (
        alerts.silence_ended(in_force, 1000),
        alerts.silence_ended([], 1000),
        inhibition.ended(1000),
    ):
        sql = str(query.compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}))
        with closing(sqlite3.connect(tmp_path / "plan.db")) as conn:
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        assert plan[0].startswith("SEARCH alerts USING INDEX ix_alerts_muted"), plan
