"""The Atlassian Statuspage public API (v2) documents, field for field, from a Snapshot.

Ids are Tocsin's own: a component's id is its policy name, a group's is its service name, an incident's
is INC-<n>, a maintenance's MNT-<n>, an update's a number. Times are ISO 8601 with an offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tocsin.statuspage.snapshot import ComponentView, GroupView, IncidentView, Snapshot, UpdateView

INCIDENTS_LISTED = 50  # Statuspage lists the 50 most recent incidents


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page(snap: Snapshot, url: str) -> dict[str, Any]:
    return {
        "id": snap.page_id,
        "name": snap.organization,
        "url": url,
        "time_zone": snap.timezone,
        "updated_at": iso(snap.updated_at),
    }


def status(snap: Snapshot) -> dict[str, str]:
    level, description = snap.indicator
    return {"indicator": level, "description": description}


def _component(snap: Snapshot, c: ComponentView) -> dict[str, Any]:
    return {
        "id": c.name,
        "name": c.title,
        "status": c.status.value,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "position": c.position,
        "description": c.description or None,
        "showcase": True,
        "start_date": c.tracked_since.date().isoformat() if c.tracked_since else None,
        "group_id": c.group,
        "page_id": snap.page_id,
        "group": False,
        "only_show_if_degraded": False,
    }


def _group(snap: Snapshot, g: GroupView) -> dict[str, Any]:
    stamps = [c.updated_at for c in g.components] or [snap.now]
    return {
        "id": g.name,
        "name": g.title,
        "status": g.status.value,
        "created_at": iso(min(c.created_at for c in g.components) if g.components else snap.now),
        "updated_at": iso(max(stamps)),
        "position": g.position,
        "description": g.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": snap.page_id,
        "group": True,
        "only_show_if_degraded": False,
        "components": [c.name for c in g.components],
    }


def components(snap: Snapshot) -> list[dict[str, Any]]:
    """Groups and their components, each group followed by its members."""
    out: list[dict[str, Any]] = []
    for g in snap.groups:
        out.append(_group(snap, g))
        out.extend(_component(snap, c) for c in g.components)
    return out


def _update(incident: IncidentView, u: UpdateView) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "status": u.status,
        "body": u.body,
        "incident_id": incident.key,
        "created_at": iso(u.created_at),
        "updated_at": iso(u.created_at),
        "display_at": iso(u.created_at),
        "affected_components": [
            {
                "code": a["code"],
                "name": a["name"],
                "old_status": a["old_status"],
                "new_status": a["new_status"],
            }
            for a in u.affected
        ],
    }


def incident(snap: Snapshot, i: IncidentView, url: str) -> dict[str, Any]:
    """One incident (or scheduled maintenance) object with its updates, newest first."""
    by_name = {c.name: c for c in snap.components}
    out: dict[str, Any] = {
        "id": i.key,
        "name": i.name,
        "status": i.status,
        "created_at": iso(i.created_at),
        "updated_at": iso(i.updated_at),
        "monitoring_at": iso(i.monitoring_at),
        "resolved_at": iso(i.resolved_at),
        "impact": i.impact,
        "shortlink": f"{url}/incidents/{i.key}",
        "started_at": iso(i.started_at),
        "page_id": snap.page_id,
        "incident_updates": [_update(i, u) for u in i.updates],
        "components": [_component(snap, by_name[name]) for name in i.components if name in by_name],
    }
    if i.maintenance:
        out["scheduled_for"] = iso(i.scheduled_for)
        out["scheduled_until"] = iso(i.scheduled_until)
    return out


def summary(snap: Snapshot, url: str) -> dict[str, Any]:
    return {
        "page": page(snap, url),
        "components": components(snap),
        "incidents": [incident(snap, i, url) for i in snap.unresolved],
        "scheduled_maintenances": [
            incident(snap, m, url) for m in [*snap.active_maintenances, *snap.upcoming_maintenances]
        ],
        "status": status(snap),
    }


def documents(snap: Snapshot, url: str) -> dict[str, dict[str, Any]]:
    """Every public JSON document by its path under /api/v2/."""
    head = page(snap, url)

    def listing(key: str, items: list[IncidentView]) -> dict[str, Any]:
        return {"page": head, key: [incident(snap, i, url) for i in items]}

    return {
        "summary.json": summary(snap, url),
        "status.json": {"page": head, "status": status(snap)},
        "components.json": {"page": head, "components": components(snap)},
        "incidents.json": listing("incidents", snap.incidents[:INCIDENTS_LISTED]),
        "incidents/unresolved.json": listing("incidents", snap.unresolved),
        "scheduled-maintenances.json": listing(
            "scheduled_maintenances", snap.maintenances[:INCIDENTS_LISTED]
        ),
        "scheduled-maintenances/upcoming.json": listing("scheduled_maintenances", snap.upcoming_maintenances),
        "scheduled-maintenances/active.json": listing("scheduled_maintenances", snap.active_maintenances),
    }


def webhook(snap: Snapshot, url: str, item: IncidentView, unsubscribe: str) -> dict[str, Any]:
    """Statuspage's webhook body for an incident (or maintenance) update."""
    level, description = snap.indicator
    return {
        "meta": {"unsubscribe": unsubscribe, "documentation": f"{url}"},
        "page": {
            "id": snap.page_id,
            "status_indicator": level,
            "status_description": description,
        },
        "incident": incident(snap, item, url),
    }


def component_webhook(
    snap: Snapshot, url: str, change: dict[str, Any], at: datetime, unsubscribe: str
) -> dict[str, Any] | None:
    """Statuspage's webhook body for a component's status change (`change`: an update's `affected` entry)."""
    component = next((c for c in snap.components if c.name == change.get("code")), None)
    if component is None:
        return None
    level, description = snap.indicator
    return {
        "meta": {"unsubscribe": unsubscribe, "documentation": f"{url}"},
        "page": {"id": snap.page_id, "status_indicator": level, "status_description": description},
        "component_update": {
            "created_at": iso(at),
            "new_status": change["new_status"],
            "old_status": change["old_status"],
            "id": f"{component.name}-{int(at.timestamp() * 1000)}",
            "component_id": component.name,
        },
        "component": _component(snap, component),
    }
