"""Where a new alert goes: the open incident of its group within the window, or a new incident."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import inhibition
from tocsin.alerts.models import Alert, AlertGroup
from tocsin.alerts.signals import NewAlert
from tocsin.core.clock import Clock
from tocsin.incidents import schemas as incident_schemas
from tocsin.incidents import service as incidents
from tocsin.incidents.lifecycle import is_open
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind
from tocsin.policy.models import Policy

STORM_NOTE_EVERY = timedelta(minutes=1)
SOURCE_BY_KIND = {"heartbeat": "monitor", "monitor": "monitor", "reports": "user_report"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str, limit: int) -> str:
    """Alert text made fit for an incident title: one line, no control characters."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit] or "alert"


def group_key(policy: Policy, labels: dict[str, str], sender_group: str | None) -> str:
    if sender_group:
        return sender_group
    return "|".join(f"{name}={labels.get(name, '')}" for name in policy.alerting.group_by)


@dataclass
class Attached:
    """What one batch did to one incident, written to its timeline once."""

    incident: Incident
    created: bool  # opened, or reopened, by this batch
    opened: list[NewAlert] = field(default_factory=list)
    muted: list[NewAlert] = field(default_factory=list)
    groups: list[AlertGroup] = field(default_factory=list)

    def due(self, now: datetime) -> bool:
        """Whether this batch goes on the timeline now, or waits to be told with later ones."""
        if self.created or self.muted:
            return True
        return any(g.told_at is None or now - g.told_at >= STORM_NOTE_EVERY for g in self.groups)


async def find_group(
    session: AsyncSession, policy: Policy, service: str, key: str, now: datetime
) -> AlertGroup | None:
    """The newest group of this service and key whose incident is open and saw an alert within the window."""
    since = now - policy.alerting.group_window
    rows = await session.scalars(
        select(AlertGroup)
        .where(AlertGroup.service == service, AlertGroup.group_key == key, AlertGroup.last_alert_at >= since)
        .order_by(AlertGroup.id.desc())
        .limit(5)
    )
    for group in rows:
        incident = await incidents.get(session, group.incident_id, for_update=True)
        if is_open(incident.status):
            return group
    return None


async def find_flapped(
    session: AsyncSession, policy: Policy, service: str, key: str, now: datetime
) -> AlertGroup | None:
    """The newest group of this service and key whose incident resolved itself (its alerts all cleared
    before anyone acknowledged it) within the window: the alert is back, and flapping. Reopening that
    incident (`incidents.reopen_flapping`) pages its team once more rather than opening an incident, and
    paging, every time the alert flaps."""
    since = now - policy.alerting.group_window
    return await session.scalar(
        select(AlertGroup)
        .join(Incident, Incident.id == AlertGroup.incident_id)
        .where(
            AlertGroup.service == service,
            AlertGroup.group_key == key,
            Incident.resolved_itself.is_(True),
            Incident.status == "resolved",
            Incident.resolved_at >= since,
        )
        .order_by(AlertGroup.id.desc())
        .limit(1)
    )


async def open_incident(
    session: AsyncSession, clock: Clock, policy: Policy, alert: NewAlert, actor: str, kind: str
) -> Incident:
    description = alert.annotations.get("description") or alert.annotations.get("summary") or ""
    data = incident_schemas.IncidentCreate(
        title=one_line(alert.summary, 200),
        severity=alert.severity,
        description=_CONTROL.sub(" ", description)[:20_000] if description != alert.summary else "",
        services=[alert.service] if alert.service else [],
        components=[alert.component] if alert.component else [],
        source=SOURCE_BY_KIND.get(kind, "alert"),
        # An alert that began long ago (a Prometheus rule firing for weeks) still opens an incident.
        detected_at=max(
            min(alert.starts_at, clock.now()), clock.now() - incidents.MAX_BACKDATE + timedelta(minutes=1)
        ),
    )
    return await incidents.declare(session, clock, policy, actor, data)


async def failing_components(session: AsyncSession, incident_id: int) -> set[str]:
    """Components with an open, unmuted alert on the incident."""
    rows = await session.scalars(
        select(Alert.component)
        .where(
            Alert.incident_id == incident_id,
            Alert.status != "resolved",
            Alert.muted_by.is_(None),
            Alert.component.is_not(None),
        )
        .distinct()
    )
    return {c for c in rows if c}


async def raise_severity(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    incident: Incident,
    opened: list[NewAlert],
    actor: str,
) -> None:
    """Raise the incident to its worst new alert's severity, or to a complete outage; never lower it."""
    rank = policy.severity(incident.severity).rank
    best, reason = incident.severity, ""
    for alert in opened:
        alert_rank = policy.severity(alert.severity).rank
        if alert_rank < policy.severity(best).rank:
            best, reason = alert.severity, f"alert {alert.summary[:120]!r}: {alert.severity_reason}"
    outage = policy.alerting.complete_outage_severity
    newly_failing = any(a.component for a in opened)
    if (
        outage
        and newly_failing
        and incident.services
        and policy.severity(outage).rank < policy.severity(best).rank
    ):
        service = next((s for s in policy.services if s.name == incident.services[0]), None)
        components = {c.name for c in service.components} if service else set()
        if components and components <= await failing_components(session, incident.id):
            best = outage
            reason = f"complete outage: all {len(components)} components of {service.name} failing"  # type: ignore[union-attr]
    if policy.severity(best).rank < rank:
        await incidents.change_severity(session, clock, policy, incident, best, actor, reason)


def sample(alerts: Iterable[NewAlert | Alert]) -> list[dict[str, object]]:
    return [
        {"id": a.id, "summary": a.summary[:200], "severity": a.severity, "dedup_key": a.dedup_key[:80]}
        for a in alerts
    ]


async def record(
    session: AsyncSession, clock: Clock, attached: Attached, integration: str, actor: str
) -> None:
    """One timeline event for every alert of the incident's groups not yet told, this batch's included."""
    now = clock.now()
    untold = sum(g.alert_count - g.told for g in attached.groups) - len(attached.muted)
    data: dict[str, object] = {
        "integration": integration,
        "opened": max(untold, len(attached.opened)),
        "total": sum(g.alert_count for g in attached.groups),
        "alerts": sample(attached.opened[:20]),
        "grouped": not attached.created,
    }
    if attached.muted:
        data["silenced"] = len(attached.muted)
        data["silenced_by"] = sorted({a.muted_by or "" for a in attached.muted})
        inhibited = sum(1 for a in attached.muted if (a.muted_by or "").startswith(inhibition.PREFIX))
        if inhibited:
            data["inhibited"] = inhibited  # of the `silenced` (muted): by an inhibit rule
    for group in attached.groups:
        group.told, group.told_at = group.alert_count, now
    await incidents.record(session, clock, attached.incident, EventKind.alert, actor, data)


async def tell_quiet_groups(session: AsyncSession, clock: Clock, limit: int = 100) -> int:
    """Put on their timelines the alerts of storms that went quiet before the timeline heard of them."""
    now = clock.now()
    groups = list(
        await session.scalars(
            select(AlertGroup)
            .where(AlertGroup.alert_count > AlertGroup.told, AlertGroup.told_at <= now - STORM_NOTE_EVERY)
            .order_by(AlertGroup.id)
            .limit(limit)
        )
    )
    for group in groups:
        incident = await incidents.get(session, group.incident_id, for_update=True)
        newest = await session.scalars(
            select(Alert).where(Alert.incident_id == incident.id).order_by(Alert.id.desc()).limit(20)
        )
        data = {
            "opened": group.alert_count - group.told,
            "total": group.alert_count,
            "alerts": sample(newest),
            "grouped": True,
        }
        group.told, group.told_at = group.alert_count, now
        await incidents.record(session, clock, incident, EventKind.alert, "tocsin", data)
    return len(groups)
