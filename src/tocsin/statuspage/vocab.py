"""The Statuspage vocabulary: component and incident statuses, impacts, the page indicator and its words."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ComponentStatus(StrEnum):
    operational = "operational"
    degraded_performance = "degraded_performance"
    partial_outage = "partial_outage"
    major_outage = "major_outage"
    under_maintenance = "under_maintenance"


class UpdateStatus(StrEnum):
    """The status an incident update gives the public incident."""

    investigating = "investigating"
    identified = "identified"
    monitoring = "monitoring"
    resolved = "resolved"
    postmortem = "postmortem"


class MaintenanceStatus(StrEnum):
    scheduled = "scheduled"
    in_progress = "in_progress"
    verifying = "verifying"
    completed = "completed"
    cancelled = "cancelled"


OPEN_MAINTENANCE = (MaintenanceStatus.scheduled, MaintenanceStatus.in_progress, MaintenanceStatus.verifying)
UNRESOLVED = (UpdateStatus.investigating, UpdateStatus.identified, UpdateStatus.monitoring)

# Worst last; maintenance is not an outage and ranks below every failure.
COMPONENT_RANK = {
    ComponentStatus.operational: 0,
    ComponentStatus.under_maintenance: 1,
    ComponentStatus.degraded_performance: 2,
    ComponentStatus.partial_outage: 3,
    ComponentStatus.major_outage: 4,
}

LABELS = {
    ComponentStatus.operational: "Operational",
    ComponentStatus.degraded_performance: "Degraded performance",
    ComponentStatus.partial_outage: "Partial outage",
    ComponentStatus.major_outage: "Major outage",
    ComponentStatus.under_maintenance: "Under maintenance",
}

# A text symbol beside every status, so it never rests on colour alone.
ICONS = {
    ComponentStatus.operational: "✓",
    ComponentStatus.degraded_performance: "▲",
    ComponentStatus.partial_outage: "◆",
    ComponentStatus.major_outage: "✕",
    ComponentStatus.under_maintenance: "⚙",
}

IMPACTS = ("none", "minor", "major", "critical")
INDICATOR_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
    "maintenance": "Service Under Maintenance",
}


def worst(statuses: Iterable[str]) -> ComponentStatus:
    """The worst of some component statuses (operational when there are none)."""
    found = [ComponentStatus(s) for s in statuses]
    return max(found, key=COMPONENT_RANK.__getitem__, default=ComponentStatus.operational)


def impact_of_severity(rank: int) -> str:
    """A public incident's impact from its severity: P0 critical, P1 major, P2 minor, P3 and below none."""
    return IMPACTS[max(0, 3 - rank)] if rank <= 3 else "none"


def default_component_status(rank: int) -> ComponentStatus:
    """What an incident of this severity does to its components unless the update says otherwise."""
    if rank <= 0:
        return ComponentStatus.major_outage
    if rank == 1:
        return ComponentStatus.partial_outage
    return ComponentStatus.degraded_performance


def indicator(
    unresolved_impacts: list[str], components: list[ComponentStatus], maintenance_active: bool
) -> tuple[str, str]:
    """(indicator, description): the worst unresolved incident impact, else the worst component status."""
    impacts = [i for i in unresolved_impacts if i != "none"]
    if impacts:
        level = max(impacts, key=IMPACTS.index)
        return level, INDICATOR_DESCRIPTIONS[level]
    failing = [
        c for c in components if c not in (ComponentStatus.operational, ComponentStatus.under_maintenance)
    ]
    if failing:
        bad = worst(failing)
        if bad is ComponentStatus.major_outage:
            everything = all(c is ComponentStatus.major_outage for c in components)
            level = "critical" if everything else "major"
            return level, INDICATOR_DESCRIPTIONS[level]
        if bad is ComponentStatus.partial_outage:
            return "minor", "Minor Service Outage"
        return "minor", "Partially Degraded Service"
    if maintenance_active or ComponentStatus.under_maintenance in components:
        return "maintenance", INDICATOR_DESCRIPTIONS["maintenance"]
    return "none", INDICATOR_DESCRIPTIONS["none"]


def public_status(incident_status: str) -> UpdateStatus:
    """The update status a Tocsin incident status suggests."""
    if incident_status in ("resolved", "closed"):
        return UpdateStatus.resolved
    if incident_status == "identified":
        return UpdateStatus.identified
    if incident_status in ("mitigated", "monitoring"):
        return UpdateStatus.monitoring
    return UpdateStatus.investigating
