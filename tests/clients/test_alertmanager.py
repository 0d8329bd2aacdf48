"""Debian's Alertmanager notifies Tocsin's webhook receiver; an HA pair's duplicates make one alert."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from clients.harness import Alertmanager, Tocsin, wait_for
from tocsin.alerts import setup

pytestmark = pytest.mark.slow


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert(name: str, ends_at: datetime | None = None) -> dict[str, Any]:
    posted: dict[str, Any] = {
        "labels": {"alertname": name, "severity": "critical", "instance": "db-1:9187", "job": "postgres"},
        "annotations": {"summary": f"{name} on db-1", "description": "replication lag over 5 minutes"},
        "generatorURL": "http://prometheus.example/graph?g0.expr=pg_replication_lag",
        "startsAt": rfc3339(datetime.now(UTC) - timedelta(minutes=1)),
    }
    if ends_at is not None:
        posted["endsAt"] = rfc3339(ends_at)
    return posted


def the_alert(tocsin: Tocsin, name: str, status: str = "open") -> dict[str, Any] | None:
    found = [a for a in tocsin.alerts(status) if a["labels"].get("alertname") == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_alertmanager_webhook_opens_and_resolves(tocsin: Tocsin, tmp_path: Path) -> None:
    key = tocsin.integration("alertmanager")
    # The receiver exactly as Tocsin prints it for a new key (`tocsin integration create`, the console).
    (receiver,) = yaml.safe_load(setup.snippet("alertmanager", tocsin.url, key))["receivers"][0][
        "webhook_configs"
    ]
    am = Alertmanager(tmp_path, receiver)
    try:
        am.post([alert("ReplicationLag")])
        firing = wait_for(lambda: the_alert(tocsin, "ReplicationLag"), 15, "the firing alert", am.log)
        assert firing["status"] == "firing" and firing["severity"] == "P0" and firing["count"] == 1
        assert len(firing["dedup_key"]) == 16  # Alertmanager's fingerprint
        [incident] = tocsin.incidents()
        assert incident["severity"] == "P0" and incident["source"] == "alert"
        assert incident["status"] == "triggered" and incident["title"] == "ReplicationLag on db-1"
        assert incident["id"] == firing["incident"]

        am.post([alert("ReplicationLag", ends_at=datetime.now(UTC) - timedelta(seconds=1))])
        resolved = wait_for(
            lambda: the_alert(tocsin, "ReplicationLag", "resolved"), 15, "the resolved alert", am.log
        )
        assert resolved["id"] == firing["id"] and resolved["resolved_at"] is not None
        assert the_alert(tocsin, "ReplicationLag") is None
        # Nobody acknowledged it, and its only alert cleared: the incident resolves by itself.
        assert tocsin.incident(incident["id"])["status"] == "resolved"
    finally:
        am.close()


def test_an_ha_pair_yields_one_incident_and_one_alert(tocsin: Tocsin, tmp_path: Path) -> None:
    key = tocsin.integration("alertmanager")
    receiver = {"url": f"{tocsin.url}/api/v1/integrations/alertmanager?key={key}"}
    with ExitStack() as stack:
        pair = []
        for _ in range(2):
            am = Alertmanager(tmp_path, receiver)
            stack.callback(am.close)
            pair.append(am)
        posted = alert("DiskFull")
        for am in pair:  # Prometheus sends every alert to every member of the pair
            am.post([posted])

        def notified_twice() -> dict[str, Any] | None:
            found = the_alert(tocsin, "DiskFull")
            return found if found and found["count"] >= 2 else None

        both = wait_for(notified_twice, 15, "a notification from each Alertmanager", pair[1].log)
        assert both["count"] == 2 and both["status"] == "firing"
        [incident] = tocsin.incidents()
        assert [a["id"] for a in tocsin.incident_alerts(incident["id"])] == [both["id"]]
        assert len(tocsin.alerts("open")) == 1
