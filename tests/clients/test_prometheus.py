"""Debian's Prometheus sends its alerts straight to Tocsin's Alertmanager API v2 endpoint.

On SQLite only: Prometheus needs about 6 s to discover its Alertmanager before its first notification, and
the storage path it exercises is the same one the Alertmanager and PagerDuty tests cover on both databases.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from clients.harness import Tocsin, prometheus, wait_for
from tocsin.alerts import setup

pytestmark = pytest.mark.slow

# Prometheus looks its Alertmanagers up every 5 s and sends only after that, so allow for a few rounds.
FIRST_ALERT_WITHIN = 90


def printed(url: str, key: str) -> dict[str, Any]:
    """The Alertmanager entry of what `tocsin integration create --kind prometheus` prints."""
    entry: dict[str, Any] = yaml.safe_load(setup.snippet("prometheus", url, key))["alerting"][
        "alertmanagers"
    ][0]
    return entry


def test_prometheus_alerts_open_one_p0_incident(sqlite_tocsin: Tocsin, tmp_path: Path) -> None:
    """Two Prometheus servers, one per way of carrying the key: a bearer token and a path prefix."""
    tocsin = sqlite_tocsin
    target = {
        "scheme": "http",
        "api_version": "v2",
        "static_configs": [{"targets": [f"127.0.0.1:{tocsin.port}"]}],
    }
    bearer_key = tocsin.integration("prometheus", "prometheus-bearer")
    prefix_key = tocsin.integration("prometheus", "prometheus-prefix")
    with ExitStack() as stack:
        logs = [
            stack.enter_context(
                # The alerting section exactly as Tocsin prints it for a new key.
                prometheus(tmp_path, printed(tocsin.url, bearer_key), "ByBearer")
            ),
            stack.enter_context(
                prometheus(tmp_path, {**target, "path_prefix": f"/i/{prefix_key}"}, "ByPrefix")
            ),
        ]

        def resent() -> list[dict[str, Any]] | None:
            # Prometheus re-sends every second here: wait until each alert has come twice.
            alerts = sorted(tocsin.alerts(), key=lambda a: str(a["integration"]))
            return alerts if len(alerts) == 2 and all(a["count"] >= 2 for a in alerts) else None

        by_bearer, by_prefix = wait_for(resent, FIRST_ALERT_WITHIN, "both alerts, twice each", logs[0])
    for alert, name in ((by_bearer, "ByBearer"), (by_prefix, "ByPrefix")):
        assert alert["integration"] == f"prometheus-{name.removeprefix('By').lower()}"
        assert alert["labels"] == {"alertname": name, "severity": "critical"}, alert
        assert (
            alert["status"] == "firing" and alert["severity"] == "P0" and alert["summary"] == f"{name} fired"
        )
        assert alert["source"] == "prometheus" and alert["ends_at"] is not None  # expires unless re-sent
    # The default policy groups every alert of a service within 10 minutes: one incident, two alerts.
    [incident] = tocsin.incidents()
    assert (
        incident["severity"] == "P0" and incident["source"] == "alert" and incident["status"] == "triggered"
    )
    assert incident["title"] in ("ByBearer fired", "ByPrefix fired")
    attached = tocsin.incident_alerts(incident["id"])
    assert sorted(a["id"] for a in attached) == sorted([by_bearer["id"], by_prefix["id"]])
