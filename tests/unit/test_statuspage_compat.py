"""The public JSON has Atlassian Statuspage's v2 shapes, field for field, and its indicator rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tocsin.statuspage import compat
from tocsin.statuspage.snapshot import ComponentView, GroupView, IncidentView, Snapshot, UpdateView
from tocsin.statuspage.vocab import ComponentStatus, indicator

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
URL = "https://status.example.com/status"

# The field lists of Statuspage's public API v2 (summary.json and friends).
PAGE = {"id", "name", "url", "time_zone", "updated_at"}
STATUS = {"indicator", "description"}
COMPONENT = {
    "id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
    "start_date", "group_id", "page_id", "group", "only_show_if_degraded",
}  # fmt: skip
GROUP = COMPONENT | {"components"}
INCIDENT = {
    "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
    "shortlink", "started_at", "page_id", "incident_updates", "components",
}  # fmt: skip
MAINTENANCE = INCIDENT | {"scheduled_for", "scheduled_until"}
UPDATE = {
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
}
AFFECTED = {"code", "name", "old_status", "new_status"}
COMPONENT_STATUSES = {
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
MAINTENANCE_STATUSES = {"scheduled", "in_progress", "verifying", "completed"}
INDICATORS = {"none", "minor", "major", "critical", "maintenance"}


def component(name: str, status: ComponentStatus, position: int) -> ComponentView:
    return ComponentView(
        name, name.title(), "", status, "portal", position, NOW, NOW, NOW - timedelta(days=3)
    )


def snapshot() -> Snapshot:
    update = UpdateView(
        7,
        "identified",
        "Found it",
        NOW,
        [{"code": "api", "name": "Api", "old_status": "operational", "new_status": "major_outage"}],
    )
    incident = IncidentView(
        "INC-4",
        "API down",
        "identified",
        "critical",
        NOW,
        NOW,
        NOW - timedelta(minutes=5),
        None,
        None,
        ["api"],
        [update],
    )
    window = IncidentView(
        "MNT-1", "Database upgrade", "scheduled", "maintenance", NOW, NOW, NOW + timedelta(days=1), None, None,
        ["database"], [UpdateView(8, "scheduled", "Tomorrow", NOW, [])], maintenance=True,
        scheduled_for=NOW + timedelta(days=1), scheduled_until=NOW + timedelta(days=1, hours=2),
    )  # fmt: skip
    members = [
        component("api", ComponentStatus.major_outage, 1),
        component("database", ComponentStatus.operational, 2),
    ]
    return Snapshot(
        "Haus",
        "America/New_York",
        "abc123",
        NOW,
        3,
        [GroupView("portal", "Portal", "", 1, members)],
        [incident],
        [window],
    )


def check_incident(item: dict[str, Any], fields: set[str], statuses: set[str]) -> None:
    assert set(item) == fields
    assert item["status"] in statuses
    assert item["impact"] in {"none", "minor", "major", "critical", "maintenance"}
    for update in item["incident_updates"]:
        assert set(update) == UPDATE
        for affected in update["affected_components"]:
            assert set(affected) == AFFECTED
    for c in item["components"]:
        assert set(c) == COMPONENT


def test_every_document_has_statuspage_fields() -> None:
    docs = compat.documents(snapshot(), URL)
    assert set(docs) == {
        "summary.json", "status.json", "components.json", "incidents.json", "incidents/unresolved.json",
        "scheduled-maintenances.json", "scheduled-maintenances/upcoming.json", "scheduled-maintenances/active.json",
    }  # fmt: skip
    summary = docs["summary.json"]
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    for doc in docs.values():
        assert set(doc["page"]) == PAGE
    assert set(summary["status"]) == STATUS and summary["status"]["indicator"] in INDICATORS
    for c in docs["components.json"]["components"]:
        assert set(c) == (GROUP if c["group"] else COMPONENT)
        assert c["status"] in COMPONENT_STATUSES
    for key in ("incidents.json", "incidents/unresolved.json"):
        for item in docs[key]["incidents"]:
            check_incident(item, INCIDENT, INCIDENT_STATUSES)
    for key in ("scheduled-maintenances.json", "scheduled-maintenances/upcoming.json"):
        assert docs[key]["scheduled_maintenances"], key
        for item in docs[key]["scheduled_maintenances"]:
            check_incident(item, MAINTENANCE, MAINTENANCE_STATUSES)
    assert docs["scheduled-maintenances/active.json"]["scheduled_maintenances"] == []
    assert set(docs["status.json"]) == {"page", "status"}


def test_values_and_formats() -> None:
    doc = compat.summary(snapshot(), URL)
    assert doc["page"] == {
        "id": "abc123",
        "name": "Haus",
        "url": URL,
        "time_zone": "America/New_York",
        "updated_at": "2026-11-26T15:00:00.000Z",
    }
    incident = doc["incidents"][0]
    assert incident["shortlink"] == f"{URL}/incidents/INC-4" and incident["incident_updates"][0]["id"] == "7"
    assert incident["components"][0]["id"] == "api"
    group = doc["components"][0]
    assert (
        group["group"] is True
        and group["components"] == ["api", "database"]
        and group["status"] == "major_outage"
    )
    assert doc["components"][1]["group_id"] == "portal"


@pytest.mark.parametrize(
    ("impacts", "components", "maintenance", "expected"),
    [
        ([], ["operational"], False, ("none", "All Systems Operational")),
        (["critical", "minor"], ["operational"], False, ("critical", "Major System Outage")),
        (["major"], ["major_outage"], False, ("major", "Partial System Outage")),
        (["none"], ["degraded_performance", "operational"], False, ("minor", "Partially Degraded Service")),
        ([], ["partial_outage", "operational"], False, ("minor", "Minor Service Outage")),
        ([], ["major_outage", "operational"], False, ("major", "Partial System Outage")),
        ([], ["major_outage", "major_outage"], False, ("critical", "Major System Outage")),
        ([], ["under_maintenance", "operational"], True, ("maintenance", "Service Under Maintenance")),
        ([], ["under_maintenance", "partial_outage"], True, ("minor", "Minor Service Outage")),
    ],
)
def test_indicator_is_worst_unresolved_impact_else_worst_component(
    impacts: list[str], components: list[str], maintenance: bool, expected: tuple[str, str]
) -> None:
    assert indicator(impacts, [ComponentStatus(c) for c in components], maintenance) == expected
