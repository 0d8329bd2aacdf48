"""Inhibit rules (Alertmanager's `inhibit_rules` in the policy), on SQLite and PostgreSQL: an open source
alert mutes the new alerts its rule targets with the same `equal` labels; they are freed, and open their
incident, once no source is open."""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import resources
from typing import Any

import httpx
import pytest

from tocsin.alerts import jobs
from tocsin.app import build_runtime
from tocsin.auth import service as auth
from tocsin.auth.deps import SESSION_COOKIE
from tocsin.auth.roles import Role
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.policy.loader import PolicyError, load_policy_text
from tocsin.policy.models import Policy
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, bearer, integration_key, user_with_token

EVENT = re.compile(r'data-kind="alert">(.*?)</li>', re.S)
RULES = """  inhibit_rules:
    - source_matchers: ['alertname="NodeDown"']
      target_matchers: ['alertname=~"Service.*"']
      equal: [instance]
    - source_matchers: ['severity="critical"']
      target_matchers: ['severity="warning"']
      equal: [alertname, instance]
    - source_matchers: ['instance="a"']
      target_matchers: ['severity="warning"']
      equal: [alertname]
"""


def policy_with(rules: str) -> Policy:
    seed = resources.files("tocsin.policy").joinpath("default.yaml").read_text(encoding="utf-8")
    assert "  inhibit_rules: []\n" in seed and "  group_by: []\n" in seed
    text = seed.replace("  inhibit_rules: []\n", rules).replace(
        "  group_by: []\n", "  group_by: [alertname]\n"
    )
    return load_policy_text(text, "inhibit.yaml")


@pytest.fixture
def rt(db: Database, clock: FakeClock) -> Runtime:
    return build_runtime(Settings(database_url=db.url), clock=clock, db=db, policy=policy_with(RULES))


@pytest.fixture
async def key(client: httpx.AsyncClient, tokens: dict[str, str]) -> str:
    return await integration_key(client, tokens["admin"], "prom", "prometheus")


def firing(clock: FakeClock, name: str, **labels: str) -> dict[str, Any]:
    ends = (clock.now() + timedelta(hours=1)).isoformat()
    return {"labels": {"alertname": name, **labels}, "endsAt": ends}


def cleared(clock: FakeClock, name: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, **labels},
        "startsAt": (clock.now() - timedelta(minutes=10)).isoformat(),
        "endsAt": (clock.now() - timedelta(seconds=1)).isoformat(),
    }


async def send(client: httpx.AsyncClient, key: str, *alerts: dict[str, Any]) -> None:
    r = await client.post("/api/v2/alerts", json=list(alerts), headers=bearer(key))
    assert r.status_code == 200, r.text


async def alerts_by_name(client: httpx.AsyncClient, token: str) -> dict[tuple[str, str], dict[str, Any]]:
    listed = (await client.get("/api/v1/alerts?status=all", headers=bearer(token))).json()
    return {(a["labels"]["alertname"], a["labels"].get("instance", "")): a for a in listed}


async def incident_titles(client: httpx.AsyncClient, token: str) -> list[str]:
    items = (await client.get("/api/v1/incidents", headers=bearer(token))).json()["items"]
    return sorted(i["title"] for i in items)


async def test_a_node_down_mutes_its_services_alerts_until_it_clears(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], key: str, clock: FakeClock
) -> None:
    viewer = tokens["viewer"]
    await send(client, key, firing(clock, "NodeDown", instance="db-1", severity="critical"))
    assert await incident_titles(client, viewer) == ["NodeDown"]
    node = (await alerts_by_name(client, viewer))[("NodeDown", "db-1")]

    # Its services' alerts on that node are recorded, muted: no incident of their own, nobody paged.
    # Another node's are not, nor an alert no rule targets.
    await send(
        client,
        key,
        firing(clock, "ServiceSlow", instance="db-1"),
        firing(clock, "ServiceDown", instance="db-1"),
        firing(clock, "ServiceSlow", instance="db-2"),
        firing(clock, "DiskFull", instance="db-1"),
    )
    found = await alerts_by_name(client, viewer)
    assert found[("ServiceSlow", "db-1")]["muted_by"] == f"inhibit:{node['id']}"
    assert found[("ServiceDown", "db-1")]["muted_by"] == f"inhibit:{node['id']}"
    assert found[("ServiceSlow", "db-1")]["incident"] is None
    assert found[("ServiceSlow", "db-2")]["muted_by"] is None
    assert found[("DiskFull", "db-1")]["muted_by"] is None
    assert await incident_titles(client, viewer) == ["DiskFull", "NodeDown", "ServiceSlow"]

    # A new alert joining the open ServiceSlow incident (which the storm lane would take) is muted too,
    # and its timeline says so.
    await send(client, key, firing(clock, "NodeDown", instance="db-3"))
    await send(client, key, firing(clock, "ServiceSlow", instance="db-3"))
    found = await alerts_by_name(client, viewer)
    slow = found[("ServiceSlow", "db-2")]["incident"]
    assert found[("ServiceSlow", "db-3")]["incident"] == slow
    assert found[("ServiceSlow", "db-3")]["muted_by"] == f"inhibit:{found[('NodeDown', 'db-3')]['id']}"
    timeline = (await client.get(f"/api/v1/incidents/{slow}/timeline", headers=bearer(viewer))).json()
    assert [e["data"].get("inhibited") for e in timeline if e["kind"] == "alert"] == [None, 1]

    # Re-sent while the node is down: still muted, nothing changes.
    await send(client, key, firing(clock, "ServiceSlow", instance="db-1"))
    await jobs.expire_alerts(rt)
    assert (await alerts_by_name(client, viewer))[("ServiceSlow", "db-1")][
        "muted_by"
    ] == f"inhibit:{node['id']}"
    assert await incident_titles(client, viewer) == ["DiskFull", "NodeDown", "ServiceSlow"]

    # The node comes back; its services still fail: the sweep frees them, and they open their incidents.
    await send(client, key, cleared(clock, "NodeDown", instance="db-1", severity="critical"))
    await jobs.expire_alerts(rt)
    found = await alerts_by_name(client, viewer)
    assert found[("ServiceSlow", "db-1")]["muted_by"] is None
    assert found[("ServiceDown", "db-1")]["muted_by"] is None
    assert found[("ServiceDown", "db-1")]["incident"] is not None
    assert await incident_titles(client, viewer) == ["DiskFull", "NodeDown", "ServiceDown", "ServiceSlow"]
    down = found[("ServiceDown", "db-1")]["incident"]
    timeline = (await client.get(f"/api/v1/incidents/{down}/timeline", headers=bearer(viewer))).json()
    assert [e["data"].get("unmuted") for e in timeline if e["kind"] == "alert"] == [[f"inhibit:{node['id']}"]]


async def test_a_source_in_the_same_request_inhibits_whatever_the_order(
    client: httpx.AsyncClient, tokens: dict[str, str], key: str, clock: FakeClock
) -> None:
    viewer = tokens["viewer"]
    await send(
        client,
        key,
        firing(clock, "ServiceSlow", instance="web-1"),
        firing(clock, "NodeDown", instance="web-1"),
        firing(clock, "ServiceDown", instance="web-1"),
    )
    found = await alerts_by_name(client, viewer)
    node = found[("NodeDown", "web-1")]
    assert found[("ServiceSlow", "web-1")]["muted_by"] == f"inhibit:{node['id']}"
    assert found[("ServiceDown", "web-1")]["muted_by"] == f"inhibit:{node['id']}"
    assert await incident_titles(client, viewer) == ["NodeDown"]


async def test_an_alert_matching_both_sides_is_inhibited_only_by_a_source_that_does_not(
    client: httpx.AsyncClient, tokens: dict[str, str], key: str, clock: FakeClock
) -> None:
    """Alertmanager's rule: an alert matching a rule's source and target matchers (the third rule) is no
    source for itself nor for its like, but one matching the source alone mutes it."""
    viewer = tokens["viewer"]

    async def muted(name: str) -> dict[str, str | None]:
        listed = (
            await client.get(f"/api/v1/alerts?filter=alertname%3D{name}", headers=bearer(viewer))
        ).json()
        return {a["labels"].get("job", ""): a["muted_by"] for a in listed}

    await send(client, key, firing(clock, "Lag", severity="warning", instance="a"))
    await send(client, key, firing(clock, "Lag", severity="warning", instance="a", job="y"))
    assert await muted("Lag") == {"": None, "y": None}

    await send(
        client,
        key,
        firing(clock, "Queue", severity="warning", instance="a"),
        firing(clock, "Queue", instance="a", job="x"),
    )
    listed = (await client.get("/api/v1/alerts?filter=alertname%3DQueue", headers=bearer(viewer))).json()
    source = next(a["id"] for a in listed if a["labels"].get("job") == "x")
    assert await muted("Queue") == {"": f"inhibit:{source}", "x": None}


def test_inhibit_rules_are_checked_at_policy_load() -> None:
    bad = """  inhibit_rules:
    - source_matchers: ['severity=~"("']
      target_matchers: ['not a matcher']
      equal: [1x]
"""
    with pytest.raises(PolicyError) as raised:
        policy_with(bad)
    text = str(raised.value)
    assert "inhibit_rules.0.source_matchers.0" in text and "not a regular expression" in text
    assert "inhibit_rules.0.target_matchers.0" in text and "is not a matcher" in text
    assert 'inhibit_rules.0.equal.0: "1x" is not a label name' in text
    assert "inhibit.yaml:" in text  # line-numbered, as every policy error


async def test_a_source_closed_with_its_incident_frees_its_targets(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], key: str, clock: FakeClock
) -> None:
    """However the source closes: here a person resolves its incident (which resolves its alerts)."""
    viewer, responder = tokens["viewer"], bearer(tokens["responder"])
    await send(client, key, firing(clock, "NodeDown", instance="db-9"))
    await send(client, key, firing(clock, "ServiceSlow", instance="db-9"))
    found = await alerts_by_name(client, viewer)
    assert found[("ServiceSlow", "db-9")]["muted_by"] == f"inhibit:{found[('NodeDown', 'db-9')]['id']}"
    node_incident = found[("NodeDown", "db-9")]["incident"]
    r = await client.post(f"/api/v1/incidents/{node_incident}/resolve", json={}, headers=responder)
    assert r.status_code == 200, r.text
    await jobs.expire_alerts(rt)
    found = await alerts_by_name(client, viewer)
    assert found[("ServiceSlow", "db-9")]["muted_by"] is None
    assert found[("ServiceSlow", "db-9")]["incident"] not in (None, node_incident)
    assert await jobs.expire_alerts(rt) == 0  # nothing left to free


async def test_the_console_says_what_inhibits_an_alert(
    client: httpx.AsyncClient, rt: Runtime, tokens: dict[str, str], key: str, clock: FakeClock
) -> None:
    await send(client, key, firing(clock, "ServiceSlow", instance="db-5"))  # opens its incident
    await send(client, key, firing(clock, "NodeDown", instance="db-6"))
    await send(client, key, firing(clock, "ServiceSlow", instance="db-6"))  # joins it, inhibited
    found = await alerts_by_name(client, tokens["viewer"])
    node, incident = found[("NodeDown", "db-6")]["id"], found[("ServiceSlow", "db-6")]["incident"]

    await user_with_token(rt.db, clock, "watcher", Role.viewer, password="correct horse battery")
    async with rt.db.transaction() as session:
        secret, _ = await auth.login(session, clock, "watcher", "correct horse battery", days=1)
    client.cookies.set(SESSION_COOKIE, secret)
    r = await client.get(f"/incidents/{incident}")
    assert r.status_code == 200, r.text
    assert f'href="/alerts?status=all&amp;before={node + 1}"' in r.text
    assert f"(inhibited by #{node})" in r.text
    silences_page = (await client.get("/silences")).text
    assert 'aria-label="Inhibit rules"' in silences_page and silences_page.count("data-inhibit-rule=") == 3
    assert "<code>alertname=~&#34;Service.*&#34;</code>" in silences_page
    assert "They mute 1 open alert now" in silences_page
    told = [re.sub(r"<[^>]+>|\s+", " ", e) for e in EVENT.findall(r.text)]
    assert [" ".join(e.split()[3:7]) for e in told] == [
        "Alerts 1 firing opened",
        "Alerts 1 inhibited via",
    ]
