"""Everything the public page shows, read from the database in one go into plain frozen objects.

The render cache builds one Snapshot per page version; every HTML page, JSON document and the feed are
pure functions of it, so a storm of visitors costs no queries (and the static export is the same code).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.ids import incident_ref
from tocsin.incidents.models import Incident
from tocsin.policy.models import Policy
from tocsin.statuspage.models import ComponentChange, Maintenance, StatusComponent, StatusUpdate
from tocsin.statuspage.vocab import (
    OPEN_MAINTENANCE,
    UNRESOLVED,
    ComponentStatus,
    MaintenanceStatus,
    UpdateStatus,
    impact_of_severity,
    indicator,
    worst,
)

HISTORY_DAYS = 90


@dataclass(frozen=True)
class UpdateView:
    id: int
    status: str
    body: str
    created_at: datetime
    affected: list[dict[str, str]]


@dataclass(frozen=True)
class IncidentView:
    """A public incident (or, with `maintenance` set, a maintenance window) and its updates, newest first."""

    key: str  # INC-42 or MNT-3
    name: str
    status: str
    impact: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime
    monitoring_at: datetime | None
    resolved_at: datetime | None
    components: list[str]
    updates: list[UpdateView]
    maintenance: bool = False
    mode: bool = False
    scheduled_for: datetime | None = None
    scheduled_until: datetime | None = None

    @property
    def unresolved(self) -> bool:
        if self.maintenance:
            return self.status in OPEN_MAINTENANCE
        return self.status in UNRESOLVED

    def touches(self, start: datetime, end: datetime, now: datetime) -> bool:
        """Whether the incident was open at some moment of [start, end)."""
        return self.started_at < end and (self.resolved_at or now) >= start


@dataclass(frozen=True)
class ComponentView:
    name: str
    title: str
    description: str
    status: ComponentStatus
    group: str
    position: int
    created_at: datetime
    updated_at: datetime
    tracked_since: datetime | None  # the first recorded status; the uptime bars have no data before it


@dataclass(frozen=True)
class GroupView:
    name: str
    title: str
    description: str
    position: int
    components: list[ComponentView]

    @property
    def status(self) -> ComponentStatus:
        return worst([c.status for c in self.components])


@dataclass(frozen=True)
class Snapshot:
    organization: str
    timezone: str
    page_id: str
    now: datetime
    version: int
    groups: list[GroupView]
    incidents: list[IncidentView]  # public incidents, newest first
    maintenances: list[IncidentView]  # newest scheduled first
    changes: dict[str, list[tuple[datetime, ComponentStatus]]] = field(default_factory=dict)

    @property
    def components(self) -> list[ComponentView]:
        return [c for g in self.groups for c in g.components]

    @property
    def unresolved(self) -> list[IncidentView]:
        return [i for i in self.incidents if i.unresolved]

    @property
    def active_maintenances(self) -> list[IncidentView]:
        return [m for m in self.maintenances if m.status in ("in_progress", "verifying")]

    @property
    def upcoming_maintenances(self) -> list[IncidentView]:
        return sorted(
            (m for m in self.maintenances if m.status == MaintenanceStatus.scheduled.value),
            key=lambda m: m.scheduled_for or m.created_at,
        )

    @property
    def indicator(self) -> tuple[str, str]:
        return indicator(
            [i.impact for i in self.unresolved],
            [c.status for c in self.components],
            bool(self.active_maintenances),
        )

    @property
    def updated_at(self) -> datetime:
        stamps = [c.updated_at for c in self.components]
        stamps += [i.updated_at for i in [*self.incidents, *self.maintenances]]
        return max(stamps, default=self.now)


def page_id(organization: str) -> str:
    """A stable, opaque page id (Statuspage's are 12 characters)."""
    return hashlib.sha256(organization.encode()).hexdigest()[:12]


def _update(row: StatusUpdate) -> UpdateView:
    return UpdateView(row.id, row.status, row.body, row.created_at, list(row.affected))


def _incident(policy: Policy, row: Incident, rows: list[StatusUpdate]) -> IncidentView:
    updates = [_update(u) for u in reversed(rows)]
    status = rows[-1].status
    monitoring = next((u.created_at for u in rows if u.status == UpdateStatus.monitoring.value), None)
    resolved = next((u.created_at for u in reversed(rows) if u.status == UpdateStatus.resolved.value), None)
    sev = policy.severities.get(row.severity)
    affected = {a["code"] for u in rows for a in u.affected}
    return IncidentView(
        key=incident_ref(row.id),
        name=row.title,
        status=status,
        impact=impact_of_severity(sev.rank if sev else 9),
        created_at=rows[0].created_at,
        updated_at=rows[-1].created_at,
        started_at=row.detected_at,
        monitoring_at=monitoring,
        resolved_at=resolved
        if status in (UpdateStatus.resolved.value, UpdateStatus.postmortem.value)
        else None,
        components=sorted(affected | set(row.components)),
        updates=updates,
    )


def _maintenance(row: Maintenance, rows: list[StatusUpdate]) -> IncidentView:
    return IncidentView(
        key=f"MNT-{row.id}",
        name=row.title,
        status=row.status,
        impact="maintenance",
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at or row.scheduled_for,
        monitoring_at=None,
        resolved_at=row.completed_at,
        components=list(row.components),
        updates=[_update(u) for u in reversed(rows)],
        maintenance=True,
        mode=row.mode,
        scheduled_for=row.scheduled_for,
        scheduled_until=row.scheduled_until,
    )


async def load(session: AsyncSession, policy: Policy, now: datetime, version: int = 0) -> Snapshot:
    """Read the whole public state: components, public incidents, maintenance, 90 days of changes."""
    rows = {r.name: r for r in await session.scalars(select(StatusComponent))}
    since = now - timedelta(days=HISTORY_DAYS + 1)
    changes: dict[str, list[tuple[datetime, ComponentStatus]]] = {}
    first_seen: dict[str, datetime] = {}
    for change in await session.scalars(
        select(ComponentChange).order_by(ComponentChange.at, ComponentChange.id)
    ):
        first_seen.setdefault(change.component, change.at)
        if change.at >= since:
            changes.setdefault(change.component, []).append((change.at, ComponentStatus(change.new_status)))
        else:  # older changes only tell the status at the start of the window
            changes[change.component] = [(since, ComponentStatus(change.new_status))]
    # A component never changed has no row: it dates from the first one that has (stable across renders).
    epoch = min((r.created_at for r in rows.values()), default=now)
    groups = []
    position = 0
    for g, service in enumerate(policy.services):
        members = []
        for component in service.components:
            position += 1
            row = rows.get(component.name)
            members.append(
                ComponentView(
                    name=component.name,
                    title=component.title,
                    description=component.description,
                    status=ComponentStatus(row.status) if row else ComponentStatus.operational,
                    group=service.name,
                    position=position,
                    created_at=row.created_at if row else epoch,
                    updated_at=row.updated_at if row else epoch,
                    tracked_since=row.created_at if row else None,
                )
            )
        groups.append(GroupView(service.name, service.title, service.description, g + 1, members))

    updates: dict[tuple[str, int], list[StatusUpdate]] = {}
    for u in await session.scalars(select(StatusUpdate).order_by(StatusUpdate.id)):
        key = (
            ("incident", u.incident_id)
            if u.incident_id is not None
            else ("maintenance", u.maintenance_id or 0)
        )
        updates.setdefault(key, []).append(u)
    incident_ids = [i for kind, i in updates if kind == "incident"]
    public: list[IncidentView] = []
    if incident_ids:
        found = await session.scalars(
            select(Incident).where(Incident.id.in_(incident_ids), Incident.customer_facing.is_(True))
        )
        public = [_incident(policy, row, updates[("incident", row.id)]) for row in found]
    public.sort(key=lambda i: (i.started_at, i.key), reverse=True)
    maintenances = [
        _maintenance(row, updates.get(("maintenance", row.id), []))
        for row in await session.scalars(select(Maintenance).order_by(Maintenance.scheduled_for.desc()))
    ]
    return Snapshot(
        organization=policy.organization,
        timezone=policy.timezone,
        page_id=page_id(policy.organization),
        now=now,
        version=version,
        groups=groups,
        incidents=public,
        maintenances=maintenances,
        changes=changes,
    )
