"""The only code that writes alerts: dedup, severity, silences, grouping into incidents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Select, Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import fastlane, grouping, inhibition, integrations, openkeys, silences
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.alerts.models import OPEN_STATUSES, Alert, AlertGroup
from tocsin.alerts.signals import NewAlert, Outcome, Repeat, Signal
from tocsin.core.clock import Clock
from tocsin.core.durations import format_duration
from tocsin.db.engine import advisory_lock
from tocsin.db.raw import Raw
from tocsin.incidents import service as incidents
from tocsin.incidents.lifecycle import Status, is_open
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind
from tocsin.policy.models import Policy


def _labels(alert_labels: dict[str, str], service: str | None, component: str | None) -> dict[str, str]:
    labels = dict(alert_labels)
    if service:
        labels.setdefault("service", service)
    if component:
        labels.setdefault("component", component)
    return labels


def _classify(policy: Policy, integration: IntegrationInfo, labels: dict[str, str]) -> tuple[str, str]:
    explicit = labels.get("severity", "")
    if explicit in policy.severities:  # a sender that already speaks P0..P3
        return explicit, f"severity={explicit}"
    return policy.alerting.severity_for(labels, integration.severity_rules)


def _place(
    policy: Policy, integration: IntegrationInfo, labels: dict[str, str]
) -> tuple[str | None, str | None]:
    """(service, component) of an alert, from the integration and the policy's names."""
    component = labels.get("component")
    if component not in policy.component_names:
        component = None
    service = integration.service
    if service is None and labels.get("service") in policy.service_names:
        service = labels["service"]
    if service is None and component is not None:
        service = policy.service_of(component)
    return service, component


class AlertRef(Protocol):
    """What the follow-up of an acknowledge or resolve needs of an alert."""

    id: int
    incident_id: int | None
    summary: str


@dataclass(slots=True)
class Known:
    """An open alert as the ingest path needs it: no ORM object, just the columns."""

    id: int
    status: str
    incident_id: int | None
    summary: str


_table: Table = Alert.__table__  # type: ignore[assignment]  # a mapped class's table is a Table


async def _open_alerts(session: AsyncSession, integration_id: int, keys: Sequence[str]) -> dict[str, Known]:
    """The open alerts among `keys`, read as the storm lane reads them (SQLite: the open alerts' map
    checked against the database; PostgreSQL: an index probe per key), in one trip."""
    parts = [keys[i : i + fastlane.CHUNK] for i in range(0, len(keys), fastlane.CHUNK)]
    connection = await session.connection()
    await session.flush()  # what this transaction added, for the statements below
    raw = await Raw.of(connection)
    if raw.sqlite:
        known = openkeys.of(connection.engine)
        await known.catch_up(raw)
        steps = [known.lookup(integration_id, part, "status, summary") for part in parts]
    else:
        steps = [fastlane.open_among(integration_id, part, "status, summary") for part in parts]
    found: dict[str, Known] = {}
    for read in await raw.run(*steps):
        for id_, key, incident_id, status, summary in read:
            found[key] = Known(id_, status, incident_id, summary)
    return found


def new_alert(policy: Policy, integration: IntegrationInfo, signal: Signal, now: datetime) -> NewAlert:
    service, component = _place(policy, integration, signal.labels)
    labels = _labels(signal.labels, service, component)
    severity, reason = _classify(policy, integration, labels)
    return NewAlert(
        integration_id=integration.id,
        dedup_key=signal.dedup_key,
        summary=signal.summary or signal.dedup_key,
        severity=severity,
        severity_reason=reason[:200],
        source=signal.source,
        service=service,
        component=component,
        labels=labels,
        annotations=signal.annotations,
        details=signal.details,
        links=signal.links,
        group_key=grouping.group_key(policy, labels, signal.group_key),
        starts_at=signal.starts_at or now,
        ends_at=signal.ends_at,
        first_seen_at=now,
        last_seen_at=now,
    )


# Repeats of open alerts, many per statement: a counter bump, the time seen and a later expiry.
_REPEAT = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"))
    .values(
        count=_table.c.count + bindparam("b_count"),
        last_seen_at=bindparam("b_seen", type_=_table.c.last_seen_at.type),
        ends_at=func.coalesce(bindparam("b_ends", type_=_table.c.ends_at.type), _table.c.ends_at),
    )
)


_INSERT = insert(_table).returning(_table.c.id, _table.c.dedup_key)


async def _insert(session: AsyncSession, alerts: list[NewAlert]) -> None:
    """Insert new alerts (batched multi-row INSERTs) and give each its id.

    RETURNING pairs each id with its dedup key (unique among a batch's new alerts), so the rows may
    come back in any order: no per-row fallback for parameter order.
    """
    by_key = {a.dedup_key: a for a in alerts}
    for id_, key in await session.execute(_INSERT, [a.row() for a in alerts]):
        by_key[key].id = id_


async def ingest(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    integration: IntegrationInfo,
    signals: Sequence[Signal],
) -> list[Outcome]:
    """Apply a batch of signals from one integration inside the caller's transaction (the full path;
    the ingest pipeline tries the storm lane, `fastlane.apply`, first)."""
    now = clock.now()
    actor = f"integration:{integration.name}"
    keys = list(dict.fromkeys(s.dedup_key for s in signals))
    known = await _open_alerts(session, integration.id, keys)
    active_silences = await silences.active(session, now)
    outcomes: list[Outcome] = []
    opened: list[tuple[int, NewAlert]] = []
    pending: dict[str, NewAlert] = {}  # opened in this batch, by dedup key
    repeats: dict[int, Repeat] = {}
    acked: list[Known] = []
    resolved: list[Known] = []
    for signal in signals:
        key = signal.dedup_key
        if signal.action == "trigger":
            fresh = pending.get(key)
            if fresh is not None:
                fresh.count += 1
                fresh.ends_at = signal.ends_at or fresh.ends_at
                outcomes.append(Outcome(key, "repeated"))
                opened.append((len(outcomes) - 1, fresh))
                continue
            old = known.get(key)
            if old is not None:
                repeats.setdefault(old.id, Repeat()).seen(signal.ends_at)
                outcomes.append(Outcome(key, "repeated", old.id, old.incident_id))
                continue
            alert = new_alert(policy, integration, signal, now)
            silence = silences.muting(active_silences, alert.labels)
            if silence is not None:
                alert.muted_by = f"{silence.kind}:{silence.id}"
            pending[key] = alert
            outcomes.append(Outcome(key, "muted" if silence else "opened"))
            opened.append((len(outcomes) - 1, alert))
            continue
        if key in pending:  # acknowledged or resolved in the batch that opened it
            await _flush_new(session, clock, policy, integration, pending, actor, now)
            fresh = pending.pop(key)
            assert fresh.id is not None  # _flush_new inserted it
            known[key] = Known(fresh.id, fresh.status, fresh.incident_id, fresh.summary)
        old = known.get(key)
        if old is None:
            outcomes.append(Outcome(key, "ignored"))
        elif signal.action == "acknowledge":
            if old.status == "firing":
                old.status = "acknowledged"
                acked.append(old)
            outcomes.append(Outcome(key, "acknowledged", old.id, old.incident_id))
        else:
            old.status = "resolved"
            del known[key]
            resolved.append(old)
            outcomes.append(Outcome(key, "resolved", old.id, old.incident_id))
    if repeats:
        await session.execute(
            _REPEAT,
            [{"b_id": i, "b_count": r.count, "b_seen": now, "b_ends": r.ends_at} for i, r in repeats.items()],
        )
    if acked:
        await session.execute(
            update(Alert), [{"id": a.id, "status": "acknowledged", "acknowledged_at": now} for a in acked]
        )
    if resolved:
        await session.execute(
            update(Alert), [{"id": a.id, "status": "resolved", "resolved_at": now} for a in resolved]
        )
    await _flush_new(session, clock, policy, integration, pending, actor, now)
    await _after_acknowledge(session, clock, policy, acked, actor)
    await after_resolve(session, clock, policy, resolved, actor)
    for index, alert in opened:
        outcome = outcomes[index]
        result = "muted" if outcome.result == "opened" and alert.muted_by else outcome.result  # inhibited
        outcomes[index] = Outcome(outcome.dedup_key, result, alert.id, alert.incident_id)
    return outcomes


async def _flush_new(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    integration: IntegrationInfo,
    pending: dict[str, NewAlert],
    actor: str,
    now: datetime,
) -> None:
    """Write the alerts opened so far: group them into incidents, insert them, note them on timelines."""
    new = [a for a in pending.values() if a.id is None]
    if not new:
        return
    later = await _inhibit(session, policy, new)
    touched = await _group(session, clock, policy, integration, new, actor, now)
    await _insert(session, new)
    if later:  # inhibited by an alert of this batch: its id is known now
        for alert, source in later:
            alert.muted_by = inhibition.muted_by(source.id or 0)
        await session.execute(update(Alert), [{"id": a.id, "muted_by": a.muted_by} for a, _ in later])
    for attached in touched.values():
        if attached.due(now):
            await grouping.record(session, clock, attached, integration.name, actor)
        if attached.opened and is_open(attached.incident.status):
            await grouping.raise_severity(session, clock, policy, attached.incident, attached.opened, actor)


async def _inhibit(
    session: AsyncSession, policy: Policy, new: list[NewAlert]
) -> list[tuple[NewAlert, NewAlert]]:
    """Mute the new alerts an inhibit rule covers; those inhibited by another new alert, with that one
    (muted now, their `muted_by` completed once it has an id)."""
    if not policy.alerting.inhibit_rules:
        return []
    found = await inhibition.find(session, policy, new)
    for i, source_id in found.by.items():
        new[i].muted_by = inhibition.muted_by(source_id)
    for i in found.by_new:
        new[i].muted_by = inhibition.PREFIX
    return [(new[i], new[j]) for i, j in found.by_new.items()]


async def _group(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    integration: IntegrationInfo,
    new: list[NewAlert],
    actor: str,
    now: datetime,
) -> dict[int, grouping.Attached]:
    """Give each new alert its group's incident, opening incidents for new groups."""
    groups: dict[tuple[str, str], AlertGroup | None] = {}
    touched: dict[int, grouping.Attached] = {}
    # Held to commit: two transactions seeing a group's first alerts at once open one incident. Taken
    # in order, so that transactions sharing several groups never wait for each other in a circle.
    for service, key in sorted({(alert.service or "", alert.group_key) for alert in new}):
        await advisory_lock(session, f"alert-group:{service}:{key}")
    for alert in new:
        gk = (alert.service or "", alert.group_key)
        if gk not in groups:
            groups[gk] = await grouping.find_group(session, policy, gk[0], gk[1], now)
        group = groups[gk]
        if group is None and not alert.muted_by:
            group = groups[gk] = await grouping.find_flapped(session, policy, gk[0], gk[1], now)
            if group is not None:
                incident = await incidents.get(session, group.incident_id, for_update=True)
                await incidents.reopen_flapping(
                    session, clock, policy, incident, actor, _back(alert, incident, now)
                )
                touched[incident.id] = grouping.Attached(incident, created=True)
        if group is None:
            if alert.muted_by:
                continue  # muted and nothing open to attach to: recorded, no incident
            incident = await grouping.open_incident(session, clock, policy, alert, actor, integration.kind)
            group = AlertGroup(
                service=gk[0],
                group_key=gk[1],
                incident_id=incident.id,
                opened_at=now,
                last_alert_at=now,
                alert_count=0,
                told=0,
            )
            session.add(group)
            groups[gk] = group
            touched[incident.id] = grouping.Attached(incident, created=True)
        elif group.incident_id not in touched:
            incident = await incidents.get(session, group.incident_id, for_update=True)
            touched[incident.id] = grouping.Attached(incident, created=False)
        if group not in touched[group.incident_id].groups:
            touched[group.incident_id].groups.append(group)
        group.last_alert_at = now
        group.alert_count += 1
        alert.incident_id = group.incident_id
        attached = touched[group.incident_id]
        (attached.muted if alert.muted_by else attached.opened).append(alert)
    return touched


def _back(alert: NewAlert, incident: Incident, now: datetime) -> str:
    ago = format_duration(now - incident.resolved_at) if incident.resolved_at else "soon"
    return f"alert {alert.summary[:120]!r} is back {ago} after the incident resolved itself: flapping"


async def _incidents_of(session: AsyncSession, alerts: Sequence[AlertRef]) -> list[Incident]:
    ids = sorted({a.incident_id for a in alerts if a.incident_id is not None})
    return [await incidents.get(session, i, for_update=True) for i in ids]


async def _after_acknowledge(
    session: AsyncSession, clock: Clock, policy: Policy, alerts: Sequence[AlertRef], actor: str
) -> None:
    """A source acknowledging its alert acknowledges an incident nobody has acknowledged yet."""
    for incident in await _incidents_of(session, alerts):
        if incident.status == Status.triggered.value:
            await incidents.acknowledge(session, clock, policy, incident, actor, "acknowledged at the source")


async def after_resolve(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    alerts: Sequence[AlertRef],
    actor: str,
    by_hand: bool = False,
) -> None:
    """Note resolved alerts; an incident whose alerts all cleared before anyone acknowledged it resolves.
    Alerts resolved `by_hand` (by a person) are noted only: that is not the incident clearing itself,
    and it waits for someone to acknowledge or resolve it."""
    await session.flush()
    for incident in await _incidents_of(session, alerts):
        still_open = await session.scalar(
            select(func.count()).where(Alert.incident_id == incident.id, Alert.status != "resolved")
        )
        mine = [a for a in alerts if a.incident_id == incident.id]
        data: dict[str, object] = {
            "resolved": len(mine),
            "alerts": [{"id": a.id, "summary": a.summary[:200]} for a in mine[:20]],
            "still_open": int(still_open or 0),
        }
        if by_hand:
            data["by_hand"] = True
        elif not still_open and incident.flaps and incident.status == Status.triggered.value:
            data["flapping"] = "it stays open until someone acknowledges it: its alerts came back before"
        await incidents.record(session, clock, incident, EventKind.alert, actor, data)
        if not (still_open or by_hand or incident.flaps) and incident.status == Status.triggered.value:
            await incidents.change_status(
                session,
                clock,
                policy,
                incident,
                Status.resolved,
                actor,
                "all alerts resolved before acknowledgement",
            )
            incident.resolved_itself = True


async def expire(session: AsyncSession, clock: Clock, policy: Policy, limit: int = 5000) -> int:
    """Resolve alerts whose `ends_at` has passed (Prometheus stopped re-sending them)."""
    now = clock.now()
    rows = list(await session.scalars(expired(now, limit)))
    for alert in rows:
        alert.status, alert.resolved_at = "resolved", now
    await after_resolve(session, clock, policy, rows, "tocsin")
    return len(rows)


async def unmute_ended(session: AsyncSession, clock: Clock, policy: Policy, limit: int = 1000) -> int:
    """Open alerts whose silence or maintenance window has ended, or whose inhibiting alert is no longer
    open: muted again by what covers them now (another silence in force, another open source of an
    inhibit rule), else unmuted and treated as if they had just fired, as Alertmanager notifies an alert
    whose silence expires: kept in their incident if it is open, else grouped into one (opening it, and
    so paging, if none is open), the timeline told, the severity raised. Without this, an alert that
    began muted and still fired after would stay muted for good, its re-sends mere repeats."""
    now = clock.now()
    in_force = await silences.active(session, now)
    rows = list(await session.scalars(silence_ended(in_force, limit)))
    rows += await session.scalars(inhibition.ended(limit))
    if not rows:
        return 0
    uncovered: list[Alert] = []
    for row in rows:
        silence = silences.muting(in_force, row.labels)
        if silence is not None:
            row.muted_by = f"{silence.kind}:{silence.id}"
        else:
            uncovered.append(row)
    found = await inhibition.find(session, policy, uncovered, again=True)
    freed: dict[int, list[Alert]] = {}
    for i, row in enumerate(uncovered):
        if i in found.by:
            row.muted_by = inhibition.muted_by(found.by[i])
        else:
            freed.setdefault(row.integration_id, []).append(row)
    for integration_id, alerts in freed.items():
        await _unmute(session, clock, policy, await integrations.by_id(session, integration_id), alerts, now)
    return len(rows)


def silence_ended(in_force: list[silences.Active], limit: int) -> Select[Alert]:
    """The open alerts muted by a silence or maintenance window no longer in force, through the index of
    muted alerts."""
    query = select(Alert).where(
        Alert.muted_by.is_not(None), inhibition.still_open_muted(), ~inhibition.inhibited()
    )
    if in_force:
        query = query.where(Alert.muted_by.not_in([f"{s.kind}:{s.id}" for s in in_force]))
    # In the index's order: ordered by id alone, SQLite walked the whole table in id order instead.
    return query.order_by(Alert.muted_by, Alert.id).limit(limit)


async def _unmute(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    integration: IntegrationInfo,
    alerts: list[Alert],
    now: datetime,
) -> None:
    muted_by = {row.id: row.muted_by or "" for row in alerts}
    touched: dict[int, grouping.Attached] = {}
    regroup: list[tuple[Alert, NewAlert]] = []
    for row in alerts:
        row.muted_by = None
        view = NewAlert.like(row)
        incident = await incidents.get(session, row.incident_id, for_update=True) if row.incident_id else None
        if incident is not None and is_open(incident.status):
            touched.setdefault(incident.id, grouping.Attached(incident, created=False)).opened.append(view)
        else:
            regroup.append((row, view))
    if regroup:
        grouped = await _group(session, clock, policy, integration, [v for _, v in regroup], "tocsin", now)
        for row, view in regroup:
            row.incident_id = view.incident_id
        for incident_id, attached in grouped.items():
            found = touched.setdefault(incident_id, attached)
            if found is not attached:
                found.opened += attached.opened
                found.groups += attached.groups
    for attached in touched.values():
        for group in attached.groups:  # told here: not again as a quiet storm
            group.told, group.told_at = group.alert_count, now
        data: dict[str, object] = {
            "integration": integration.name,
            "opened": len(attached.opened),
            "alerts": grouping.sample(attached.opened[:20]),
            "grouped": not attached.created,
            "unmuted": sorted({muted_by[v.id] for v in attached.opened if v.id is not None}),
        }
        await incidents.record(session, clock, attached.incident, EventKind.alert, "tocsin", data)
        if is_open(attached.incident.status):
            await grouping.raise_severity(
                session, clock, policy, attached.incident, attached.opened, "tocsin"
            )


def expired(now: datetime, limit: int) -> Select[Alert]:
    """The open alerts whose `ends_at` is past, oldest first, found by `ix_alerts_status_ends`: with
    `status != 'resolved'` SQLite scanned every alert in id order (100-180 ms at 170,000 open alerts,
    every 5 s, in a write transaction that held up every ingest commit meanwhile)."""
    return (
        select(Alert)
        .where(Alert.status.in_(OPEN_STATUSES), Alert.ends_at <= now)
        .order_by(Alert.id)
        .limit(limit)
    )
