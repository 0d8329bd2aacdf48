"""Finding one's way in a storm: alerts filtered by label matchers (exactly as a silence matches them),
counted by a label's value, and what each silence mutes; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tocsin.alerts import triage
from tocsin.alerts.matchers import matches, parse_filter
from tocsin.runtime import Runtime
from tocsin.testing import bearer, integration_key


async def storm(client: httpx.AsyncClient, admin: str) -> dict[str, str]:
    """30 DiskFull (db-0 .. db-29), 20 HighLatency (api, web), one PagerDuty event without labels."""
    keys = {}
    for kind in ("prometheus", "pagerduty"):
        keys[kind] = await integration_key(client, admin, kind, kind)
    disk = [{"labels": {"alertname": "DiskFull", "instance": f"db-{i}", "job": "node"}} for i in range(30)]
    slow = [
        {"labels": {"alertname": "HighLatency", "service": "api" if i % 2 else "web", "instance": f"lb-{i}"}}
        for i in range(20)
    ]
    for batch in (disk, slow):
        r = await client.post("/api/v2/alerts", json=batch, headers=bearer(keys["prometheus"]))
        assert r.status_code == 200, r.text
    event = {
        "routing_key": keys["pagerduty"],
        "event_action": "trigger",
        "dedup_key": "mail",
        "payload": {"summary": "Mail bouncing", "source": "sendgrid", "severity": "error"},
    }
    assert (await client.post("/v2/enqueue", json=event)).status_code == 202
    return keys


async def listed(client: httpx.AsyncClient, token: str, **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/alerts", params={"limit": 1000, **params}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return list(r.json())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('alertname="DiskFull"', 30),
        ('{alertname="DiskFull", instance=~"db-1.*"}', 11),  # db-1, db-10 .. db-19
        ("alertname=HighLatency, service=api", 10),
        ('alertname!="DiskFull"', 21),  # the PagerDuty alert has no alertname: "" is not DiskFull
        ('alertname=""', 1),  # no such label reads as empty, as in Alertmanager
        ("instance=~lb-1", 1),  # a regular expression matches the whole value
        ('instance!~"(db|lb)-.*"', 1),
        ('job="node", instance="db-7"', 1),
        ('alertname="Nothing"', 0),
    ],
)
async def test_a_filter_shows_exactly_what_a_silence_with_its_matchers_would_mute(
    client: httpx.AsyncClient, tokens: dict[str, str], text: str, expected: int
) -> None:
    await storm(client, tokens["admin"])
    everything = await listed(client, tokens["viewer"])
    assert len(everything) == 51
    wanted = parse_filter(text)
    muted = [a["id"] for a in everything if all(matches(m, a["labels"]) for m in wanted)]
    found = await listed(client, tokens["viewer"], filter=text)
    assert [a["id"] for a in found] == muted  # newest first, as the unfiltered list
    assert len(found) == expected
    # Several `filter` values are all applied, as Alertmanager's API takes them.
    parts = [part for part in text.strip("{}").split(", ")]
    assert [a["id"] for a in await listed(client, tokens["viewer"], filter=parts)] == muted


async def test_many_rows_in_a_status_are_read_by_id_with_the_same_result(
    client: httpx.AsyncClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `_FEW` rows in a status the database reads rows by id instead of by the index of statuses
    (a storm's open alerts): the same alerts, in the same order, and the same counts."""
    keys = await storm(client, tokens["admin"])
    resolve = {"routing_key": keys["pagerduty"], "event_action": "resolve", "dedup_key": "mail"}
    assert (await client.post("/v2/enqueue", json=resolve)).status_code == 202
    queries: list[dict[str, Any]] = [
        {},
        {"status": "resolved"},
        {"status": "firing", "limit": 7},
        {"filter": "instance=~db-1.*"},
        {"filter": "alertname=HighLatency", "limit": 3},
    ]
    groups = {"by": "service", "filter": "instance=~lb-1.*"}
    viewer = bearer(tokens["viewer"])
    few = [await listed(client, tokens["viewer"], **q) for q in queries]
    few_groups = (await client.get("/api/v1/alerts/groups", params=groups, headers=viewer)).json()
    monkeypatch.setattr(triage, "_FEW", 10)
    assert [await listed(client, tokens["viewer"], **q) for q in queries] == few
    assert (await client.get("/api/v1/alerts/groups", params=groups, headers=viewer)).json() == few_groups
    assert [len(rows) for rows in few] == [50, 1, 7, 11, 3]


async def test_a_filter_narrows_by_status_incident_and_limit_and_names_what_it_cannot_read(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    keys = await storm(client, tokens["admin"])
    resolve = {"routing_key": keys["pagerduty"], "event_action": "resolve", "dedup_key": "mail"}
    assert (await client.post("/v2/enqueue", json=resolve)).status_code == 202
    assert await listed(client, tokens["viewer"], filter='alertname=""') == []  # open only, by default
    (mail,) = await listed(client, tokens["viewer"], filter='alertname=""', status="resolved")
    assert mail["summary"] == "Mail bouncing"
    assert len(await listed(client, tokens["viewer"], status="all")) == 51
    disk = await listed(client, tokens["viewer"], filter="alertname=DiskFull", limit=5)
    assert [a["labels"]["instance"] for a in disk] == ["db-29", "db-28", "db-27", "db-26", "db-25"]

    # Another service's alert opens an incident of its own.
    r = await client.post(
        "/api/v1/integrations",
        json={"name": "portal", "kind": "generic", "service": "portal"},
        headers=bearer(tokens["admin"]),
    )
    portal = r.json()["key"]
    sent = {"summary": "Portal login fails", "severity": "critical", "details": {"alertname": "Login"}}
    r = await client.post("/api/v1/integrations/generic", json=sent, headers=bearer(portal))
    assert r.status_code == 202, r.text
    other = r.json()["incident"]
    assert other != disk[0]["incident"]
    (login,) = await listed(client, tokens["viewer"], incident=other)
    assert login["summary"] == "Portal login fails"
    of_storm = await listed(client, tokens["viewer"], status="all", incident=disk[0]["incident"])
    assert len(of_storm) == 51 and login["id"] not in {a["id"] for a in of_storm}
    assert await listed(client, tokens["viewer"], incident=other, filter="alertname=DiskFull") == []

    for params, message in [
        ({"filter": "alertname"}, "is not a matcher"),
        ({"filter": 'instance=~"db-("'}, "not a regular expression"),
        ({"filter": 'alertname="DiskFull'}, "no closing quote"),
        ({"filter": ",".join(f"a{i}=x" for i in range(51))}, "at most 50 matchers"),
    ]:
        r = await client.get("/api/v1/alerts", params=params, headers=bearer(tokens["viewer"]))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "filter" and message in r.json()["error"]["message"]
    r = await client.get("/api/v1/alerts", params={"incident": "INC-999"}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 404
    r = await client.get("/api/v1/alerts", params={"status": "muted"}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 422


async def test_pages_of_alerts_follow_the_link_header(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await storm(client, tokens["admin"])
    everything = [a["id"] for a in await listed(client, tokens["viewer"])]
    seen: list[int] = []
    url: str | None = "/api/v1/alerts?limit=20"
    while url:
        r = await client.get(url, headers=bearer(tokens["viewer"]))
        assert r.status_code == 200, r.text
        seen += [a["id"] for a in r.json()]
        link = r.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert seen == everything and len(seen) == 51
    # A filter's pages too: 30 DiskFull, 12 a page.
    r = await client.get(
        "/api/v1/alerts",
        params={"filter": "alertname=~Disk.*", "limit": 12},
        headers=bearer(tokens["viewer"]),
    )
    first = [a["labels"]["instance"] for a in r.json()]
    assert first == [f"db-{i}" for i in range(29, 17, -1)]
    assert "before=" in r.headers["link"] and r.headers["link"].endswith('>; rel="next"')
    for before in ("0", str(2**31), "x"):  # alert ids are 32-bit: a larger one is a 422, not a 5xx
        r = await client.get("/api/v1/alerts", params={"before": before}, headers=bearer(tokens["viewer"]))
        assert r.status_code == 422, before


async def test_a_filter_that_matches_little_of_a_long_history_stops_and_says_so(
    client: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    await storm(client, tokens["admin"])
    monkeypatch.setattr(triage, "SCAN", 25)
    r = await client.get(
        "/api/v1/alerts", params={"filter": "instance=~db-0"}, headers=bearer(tokens["viewer"])
    )
    assert r.json() == [] and r.headers["tocsin-filter-cut"] == "true"
    params = {"filter": "instance=~lb-0", "limit": 1}
    r = await client.get("/api/v1/alerts", params=params, headers=bearer(tokens["viewer"]))
    assert len(r.json()) == 1 and "tocsin-filter-cut" not in r.headers  # as many as asked, before the cut
    # A cut filter goes on from the last row it read: 25 rows a page, db-0 (the oldest row) on the third.
    pages: list[list[str]] = []
    url: str | None = "/api/v1/alerts?" + urlencode({"filter": "instance=~db-0"})
    while url:
        r = await client.get(url, headers=bearer(tokens["viewer"]))
        pages.append([a["labels"]["instance"] for a in r.json()])
        link = r.headers.get("link")
        assert (link is not None) == (r.headers.get("tocsin-filter-cut") == "true")
        url = link[1 : link.index(">")] if link else None
    assert pages == [[], [], ["db-0"]]
    monkeypatch.undo()
    wanted = parse_filter("instance=~db-0|lb-0")  # a regex: nothing narrows it in SQL
    async with rt.db.session() as session:
        whole = await triage.filtered(session, "open", wanted, 10)
        cut = await triage.filtered(session, "open", wanted, 10, scan=25)
        narrowed = await triage.filtered(
            session, "open", [*wanted, *parse_filter("alertname=DiskFull")], 10, scan=30
        )
    assert [a.labels["instance"] for a in whole.alerts] == ["lb-0", "db-0"] and not whole.cut
    # The 25 newest candidates hold lb-0 (HighLatency came after DiskFull), not db-0: stopped, and said so.
    assert [a.labels["instance"] for a in cut.alerts] == ["lb-0"] and cut.cut
    # An exact matcher narrows the candidates in SQL first: the 30 DiskFull alerts only, all looked at.
    assert [a.labels["instance"] for a in narrowed.alerts] == ["db-0"] and not narrowed.cut


async def test_alerts_are_counted_by_a_label_s_value(
    client: httpx.AsyncClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await storm(client, tokens["admin"])

    async def groups(**params: Any) -> list[tuple[str, int]]:
        r = await client.get("/api/v1/alerts/groups", params=params, headers=bearer(tokens["viewer"]))
        assert r.status_code == 200, r.text
        return [(g["value"], g["count"]) for g in r.json()]

    assert await groups() == [("DiskFull", 30), ("HighLatency", 20), ("", 1)]
    assert await groups(by="service") == [("", 31), ("api", 10), ("web", 10)]
    assert await groups(limit=1) == [("DiskFull", 30)]
    assert await groups(status="resolved") == []
    # A filter narrows what is counted: by the database for exact matchers, else here.
    assert await groups(by="service", filter="alertname=HighLatency") == [("api", 10), ("web", 10)]
    assert await groups(by="service", filter="instance=~lb-1.*") == [
        ("api", 6),
        ("web", 5),
    ]  # lb-1, lb-10 .. lb-19
    (disk,) = await listed(client, tokens["viewer"], filter="instance=db-3")
    assert await groups(incident=disk["incident"], status="all", limit=2) == [
        ("DiskFull", 30),
        ("HighLatency", 20),
    ]
    # The whole history is counted among its newest alerts (here the 21 newest: not one DiskFull).
    assert await groups(status="all") == [("DiskFull", 30), ("HighLatency", 20), ("", 1)]
    monkeypatch.setattr(triage, "HISTORY", 21)
    assert await groups(status="all") == [("HighLatency", 20), ("", 1)]
    assert await groups(status="all", incident=disk["incident"], limit=1) == [("DiskFull", 30)]
    for params in ({"by": "not a label"}, {"by": "1x"}):
        r = await client.get("/api/v1/alerts/groups", params=params, headers=bearer(tokens["viewer"]))
        assert r.status_code == 422 and r.json()["error"]["field"] == "by"
    r = await client.get("/api/v1/alerts/groups", headers=bearer("nope"))
    assert r.status_code == 401


async def test_each_silence_says_how_many_open_alerts_it_mutes(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    responder = bearer(tokens["responder"])
    silence = {
        "matchers": [{"name": "alertname", "value": "HighLatency"}, {"name": "service", "value": "web"}],
        "ends_at": "2099-01-01T00:00:00Z",
        "comment": "web is being moved",
    }
    made = await client.post("/api/v1/silences", json=silence, headers=responder)
    assert made.status_code == 201 and made.json()["muting"] == 0
    idle = {**silence, "matchers": [{"name": "alertname", "value": "Nothing"}], "comment": "nothing yet"}
    assert (await client.post("/api/v1/silences", json=idle, headers=responder)).status_code == 201
    await storm(client, tokens["admin"])
    counted = {
        s["comment"]: s["muting"] for s in (await client.get("/api/v1/silences", headers=responder)).json()
    }
    assert counted == {"web is being moved": 10, "nothing yet": 0}


async def timeline(client: httpx.AsyncClient, token: str, incident: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/incidents/{incident}/timeline", headers=bearer(token))
    assert r.status_code == 200, r.text
    return [e for e in r.json() if e["kind"] == "alert"]


async def test_alerts_are_resolved_by_hand_and_the_incident_is_left_to_its_people(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    keys = await storm(client, tokens["admin"])
    responder = bearer(tokens["responder"])
    stale = await listed(client, tokens["viewer"], filter="instance=~db-(1|2)")
    ids = [a["id"] for a in stale]
    incident = stale[0]["incident"]
    r = await client.post("/api/v1/alerts/resolve", json={"ids": [*ids, 99999]}, headers=responder)
    assert r.status_code == 200, r.text
    assert r.json() == {"resolved": sorted(ids), "skipped": [99999]}
    assert await listed(client, tokens["viewer"], filter="instance=~db-(1|2)") == []
    resolved = await listed(client, tokens["viewer"], filter="instance=~db-(1|2)", status="resolved")
    assert sorted(a["id"] for a in resolved) == sorted(ids)
    note = (await timeline(client, tokens["viewer"], incident))[-1]
    assert note["actor"] == "responder-user"
    assert (
        note["data"]["resolved"] == 2 and note["data"]["by_hand"] is True and note["data"]["still_open"] == 49
    )
    again = await client.post("/api/v1/alerts/resolve", json={"ids": ids}, headers=responder)
    assert again.json() == {"resolved": [], "skipped": sorted(ids)}

    # Every alert of an incident nobody acknowledged, resolved by hand: the incident is not "resolved
    # itself"; it stays triggered, for someone to acknowledge or resolve.
    everything = [a["id"] for a in await listed(client, tokens["viewer"], incident=incident)]
    r = await client.post("/api/v1/alerts/resolve", json={"ids": everything}, headers=responder)
    assert len(r.json()["resolved"]) == 49
    r = await client.get(f"/api/v1/incidents/{incident}", headers=responder)
    assert r.json()["status"] == "triggered" and r.json()["resolved_itself"] is False
    # The sender firing one again: a new alert, in the incident still open.
    again = [{"labels": {"alertname": "DiskFull", "instance": "db-1", "job": "node"}}]
    assert (
        await client.post("/api/v2/alerts", json=again, headers=bearer(keys["prometheus"]))
    ).status_code == 200
    (back,) = await listed(client, tokens["viewer"], filter="instance=db-1")
    assert back["id"] not in ids and back["incident"] == incident

    for body in ({"ids": []}, {"ids": [0]}, {"ids": list(range(1, 1002))}, {"id": [1]}):
        r = await client.post("/api/v1/alerts/resolve", json=body, headers=responder)
        assert r.status_code == 422, body
    r = await client.post("/api/v1/alerts/resolve", json={"ids": [1]}, headers=bearer(tokens["viewer"]))
    assert r.status_code == 403
