"""The only code that writes incidents, their roles and their timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.models import OPEN_STATUSES, Alert
from tocsin.core.clock import Clock
from tocsin.core.durations import format_duration
from tocsin.core.errors import Conflict, InvalidInput, NotFound
from tocsin.core.ids import incident_ref, parse_incident_ref
from tocsin.db.engine import advisory_lock
from tocsin.incidents import schemas, sla
from tocsin.incidents.channels import channel_name
from tocsin.incidents.lifecycle import ACTIVE, MITIGATED, REOPENABLE, Status, allowed
from tocsin.incidents.models import Incident, RoleAssignment, TimelineEvent
from tocsin.incidents.timeline import EventKind, append
from tocsin.incidents.timers import replan
from tocsin.oncall.models import Page
from tocsin.policy.models import Policy

SINGLE_HOLDER_ROLES = ("commander", "scribe", "communications")
MAX_BACKDATE = timedelta(days=30)
CLOCK_SKEW = timedelta(minutes=5)


_HELD = "tocsin.incidents.held"  # session.info: ids of the incidents this transaction has locked or created


async def get(session: AsyncSession, ref: str | int, *, for_update: bool = False) -> Incident:
    """Find an incident by `INC-42`, `42` or 42 (`for_update`: locked until the transaction ends)."""
    number = ref if isinstance(ref, int) else parse_incident_ref(ref)
    if number is None:
        raise NotFound(f"{ref!r} is not an incident id (expected INC-<number>)", field="id")
    held: set[int] = session.info.setdefault(_HELD, set())
    if for_update and number in held:  # locked (or created) earlier in this transaction: no second round trip
        mine = await session.get(Incident, number)
        if mine is not None:
            return mine
    query = select(Incident).where(Incident.id == number)
    if for_update:
        query = query.with_for_update()
    incident = await session.scalar(query)
    if incident is None:
        raise NotFound(f"no incident {incident_ref(number)}", field="id")
    if for_update:
        held.add(number)
    return incident


def _check_scope(policy: Policy, data: schemas.IncidentCreate) -> None:
    if data.severity not in policy.severities:
        _unknown_severity(policy)
    services = {s.name for s in policy.services}
    for i, name in enumerate(data.services):
        if name not in services:
            raise InvalidInput(
                f"unknown service {name!r}; known: {', '.join(sorted(services))}", field=f"services.{i}"
            )
    components = policy.component_names
    for i, name in enumerate(data.components):
        if name not in components:
            raise InvalidInput(
                f"unknown component {name!r}; known: {', '.join(sorted(components))}", field=f"components.{i}"
            )


def _unknown_severity(policy: Policy) -> None:
    raise InvalidInput(f"unknown severity; one of {', '.join(policy.severity_keys)}", field="severity")


async def declare(
    session: AsyncSession, clock: Clock, policy: Policy, actor: str, data: schemas.IncidentCreate
) -> Incident:
    """Open an incident, compute its SLA clock and start its timeline."""
    _check_scope(policy, data)
    now = clock.now()
    detected = data.detected_at or now
    if detected.tzinfo is None:
        raise InvalidInput("must include a time zone offset", field="detected_at")
    if detected > now + CLOCK_SKEW or detected < now - MAX_BACKDATE:
        raise InvalidInput("must be within the last 30 days and not in the future", field="detected_at")
    customer_facing = data.customer_facing
    if customer_facing is None:
        customer_facing = policy.severity(data.severity).rank <= 1
    day = detected.astimezone(policy.tz).date()
    prefix = f"#{policy.channels.incident_prefix}-{day.isoformat()}"
    await advisory_lock(session, prefix)
    taken = set(await session.scalars(select(Incident.channel).where(Incident.channel.startswith(prefix))))
    incident = Incident(
        title=data.title,
        description=data.description,
        severity=data.severity,
        status=Status.triggered.value,
        source=data.source,
        customer_facing=customer_facing,
        services=list(data.services),
        components=list(data.components),
        channel=channel_name(policy.channels.incident_prefix, day, data.title, taken),
        detected_at=detected,
        created_by=actor,
        created_at=now,
        updated_at=now,
        last_seq=0,
        last_hash="0" * 64,
    )
    sla.apply(policy, incident)
    session.add(incident)
    await session.flush()
    session.info.setdefault(_HELD, set()).add(incident.id)
    append(
        session,
        incident,
        EventKind.declared,
        actor,
        now,
        {
            "title": incident.title,
            "severity": incident.severity,
            "description": incident.description,
            "services": incident.services,
            "components": incident.components,
            "customer_facing": incident.customer_facing,
            "source": incident.source,
            "channel": incident.channel,
            "detected_at": detected.isoformat(),
        },
    )
    if data.commander:
        _assign(
            session, incident, "commander", data.commander, actor, now, await _open_roles(session, incident)
        )
    await replan(session, policy, incident, now, assemble=True, fresh=True)
    return incident


async def list_incidents(
    session: AsyncSession,
    *,
    statuses: Sequence[Status] = (),
    severities: Sequence[str] = (),
    open_only: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Incident], int]:
    query = select(Incident)
    if statuses:
        query = query.where(Incident.status.in_([s.value for s in statuses]))
    if severities:
        query = query.where(Incident.severity.in_(list(severities)))
    if open_only:
        query = query.where(Incident.status.in_([s.value for s in ACTIVE]))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Incident.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def _touch(incident: Incident, now: datetime) -> None:
    incident.updated_at = now


def _set_status(incident: Incident, new: Status, now: datetime) -> None:
    incident.status = new.value
    if new is not Status.triggered and incident.acknowledged_at is None:
        incident.acknowledged_at = now  # working on it implies someone has it
    if new in MITIGATED and incident.mitigated_at is None:
        incident.mitigated_at = now
    if new is Status.resolved:
        incident.resolved_at = now
    if new is Status.closed:
        incident.closed_at = now


async def firing_alerts(session: AsyncSession, incident_id: int) -> int:
    """How many of the incident's alerts still fire (open and not muted)."""
    query = select(func.count(Alert.id)).where(
        Alert.incident_id == incident_id, Alert.status != "resolved", Alert.muted_by.is_(None)
    )
    return await session.scalar(query) or 0


async def _resolve_alerts(session: AsyncSession, incident_id: int, now: datetime) -> int:
    """Resolve the incident's alerts still open (firing, acknowledged or muted), as PagerDuty does: an
    alert left open on a resolved incident would take its later triggers and re-sends as repeats, and
    a recurrence would page nobody. If it still fires, its next trigger opens an alert and an incident."""
    result = await session.execute(
        update(Alert)
        .where(Alert.incident_id == incident_id, Alert.status.in_(OPEN_STATUSES))
        .values(status="resolved", resolved_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _check_stable(session: AsyncSession, incident: Incident, now: datetime, override: str) -> None:
    """The stability watch: a mitigated incident resolves once the watch has passed with no alert firing."""
    if override or incident.mitigated_at is None or Status(incident.status) not in MITIGATED:
        return
    ref = incident_ref(incident.id)
    hint = "; to resolve anyway, give an override reason"
    if incident.watch_until is not None and now < incident.watch_until:
        left = format_duration(timedelta(seconds=int((incident.watch_until - now).total_seconds()) + 1))
        raise Conflict(
            f"{ref} is in its stability watch until {incident.watch_until.isoformat(timespec='seconds')} "
            f"({left} left){hint}",
            field="override_reason",
            current=incident.status,
            allowed=[s.value for s in allowed(Status(incident.status))],
        )
    firing = await firing_alerts(session, incident.id)
    if firing:
        raise Conflict(
            f"{ref} still has {firing} firing alert{'s' if firing != 1 else ''}{hint}",
            field="override_reason",
            current=incident.status,
            allowed=[s.value for s in allowed(Status(incident.status))],
        )


async def change_status(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    incident: Incident,
    new: Status,
    actor: str,
    note: str = "",
    *,
    override: str = "",
    via: str = "api",
) -> Incident:
    """Move the incident along its lifecycle; 409 naming the allowed moves when it may not go there.

    Entering mitigation starts the stability watch; resolving a mitigated incident before the watch has
    passed, or while its alerts fire, is refused unless an override reason is given.
    """
    current = Status(incident.status)
    if new is current:
        raise Conflict(
            f"{incident_ref(incident.id)} is already {current.value}",
            field="status",
            current=current.value,
            allowed=[s.value for s in allowed(current)],
        )
    if new not in allowed(current):
        options = ", ".join(s.value for s in allowed(current)) or "none (reopen it first)"
        raise Conflict(
            f"cannot move {incident_ref(incident.id)} from {current.value} to {new.value}; allowed: {options}",
            field="status",
            current=current.value,
            allowed=[s.value for s in allowed(current)],
        )
    now = clock.now()
    if new is Status.resolved:
        await _check_stable(session, incident, now, override)
    was_acknowledged = incident.acknowledged_at is not None
    _set_status(incident, new, now)
    if new in (Status.mitigated, Status.monitoring) and current not in MITIGATED:
        incident.watch_until = now + policy.communication.stability_watch
    sla.apply(policy, incident)
    _touch(incident, now)
    data: dict[str, Any] = {"from": current.value, "to": new.value}
    if note:
        data["note"] = note
    if override and new is Status.resolved:
        data["override"] = override
    if new is Status.resolved:
        closed = await _resolve_alerts(session, incident.id, now)
        if closed:
            data["alerts_resolved"] = closed
    if incident.watch_until is not None and new in (Status.mitigated, Status.monitoring):
        data["watch_until"] = incident.watch_until.isoformat()
    append(session, incident, EventKind.status_change, actor, now, data)
    if not was_acknowledged and incident.acknowledged_at is not None:
        await session.execute(
            update(Page)
            .where(Page.incident_id == incident.id, Page.acknowledged_at.is_(None))
            .values(acknowledged_at=now, acknowledged_via=via)
        )
    await replan(session, policy, incident, now)
    return incident


async def acknowledge(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    incident: Incident,
    actor: str,
    note: str = "",
    *,
    via: str = "api",
) -> Incident:
    """Someone has it: stops the paging (pending notifications and the unacknowledged escalation)."""
    return await change_status(session, clock, policy, incident, Status.acknowledged, actor, note, via=via)


async def reopen(
    session: AsyncSession, clock: Clock, policy: Policy, incident: Incident, actor: str, reason: str
) -> Incident:
    current = Status(incident.status)
    if current not in REOPENABLE:
        raise Conflict(
            f"{incident_ref(incident.id)} is {current.value}; only resolved or closed incidents reopen",
            field="status",
            current=current.value,
            allowed=[s.value for s in allowed(current)],
        )
    new = Status.triggered if incident.acknowledged_at is None else Status.investigating
    return await _reopen(session, clock, policy, incident, actor, new, {"note": reason})


async def reopen_flapping(
    session: AsyncSession, clock: Clock, policy: Policy, incident: Incident, actor: str, note: str
) -> Incident:
    """An incident that resolved itself (`resolved_itself`) and whose alert is back: triggered again, as
    nobody ever acknowledged it, and its team paged again. From now on it waits for an acknowledgement
    rather than resolving itself when its alerts clear, so a flapping alert pages once, not once a flap."""
    incident.acknowledged_at = None  # set by its resolving itself only
    incident.flaps += 1
    data = {"note": note, "flapping": incident.flaps}
    return await _reopen(session, clock, policy, incident, actor, Status.triggered, data, assemble=True)


async def _reopen(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    incident: Incident,
    actor: str,
    new: Status,
    data: dict[str, Any],
    *,
    assemble: bool = False,
) -> Incident:
    now = clock.now()
    current = incident.status
    incident.status = new.value
    incident.resolved_at = incident.closed_at = incident.mitigated_at = incident.watch_until = None
    incident.resolved_itself = False
    sla.apply(policy, incident)
    _touch(incident, now)
    append(
        session,
        incident,
        EventKind.status_change,
        actor,
        now,
        {"from": current, "to": new.value, "reopened": True, **data},
    )
    await replan(session, policy, incident, now, assemble=assemble)
    return incident


async def change_severity(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    incident: Incident,
    severity: str,
    actor: str,
    reason: str,
) -> Incident:
    """Re-classify; the SLA clock is recomputed from the detection time."""
    if severity not in policy.severities:
        _unknown_severity(policy)
    if severity == incident.severity:
        raise Conflict(f"{incident_ref(incident.id)} is already {severity}", field="severity")
    now = clock.now()
    old = incident.severity
    incident.severity = severity
    sla.apply(policy, incident)
    _touch(incident, now)
    append(
        session,
        incident,
        EventKind.severity_change,
        actor,
        now,
        {"from": old, "to": severity, "reason": reason},
    )
    # A worse severity pages whoever it adds (P2 -> P0: the full team and management) and re-plans.
    await replan(
        session, policy, incident, now, assemble=policy.severity(severity).rank < policy.severity(old).rank
    )
    return incident


async def _open_roles(session: AsyncSession, incident: Incident) -> list[RoleAssignment]:
    query = select(RoleAssignment).where(
        RoleAssignment.incident_id == incident.id, RoleAssignment.ended_at.is_(None)
    )
    return list(await session.scalars(query))


def _assign(
    session: AsyncSession,
    incident: Incident,
    role: str,
    person: str,
    actor: str,
    now: datetime,
    current: list[RoleAssignment],
) -> None:
    previous = None
    for held in current:
        if held.role == role and (role in SINGLE_HOLDER_ROLES or held.person == person):
            if held.person == person:
                raise Conflict(f"{person} is already {role} of {incident_ref(incident.id)}", field="person")
            held.ended_at, held.ended_by, previous = now, actor, held.person
    session.add(
        RoleAssignment(incident_id=incident.id, role=role, person=person, assigned_at=now, assigned_by=actor)
    )
    append(
        session,
        incident,
        EventKind.role_change,
        actor,
        now,
        {"role": role, "person": person, "action": "assign", "previous": previous},
    )


async def change_role(
    session: AsyncSession, clock: Clock, incident: Incident, change: schemas.RoleChange, actor: str
) -> Incident:
    now = clock.now()
    current = await _open_roles(session, incident)
    if change.action == "assign":
        _assign(session, incident, change.role, change.person, actor, now, current)
    else:
        held = [r for r in current if r.role == change.role and r.person == change.person]
        if not held:
            raise Conflict(
                f"{change.person} is not {change.role} of {incident_ref(incident.id)}", field="person"
            )
        for r in held:
            r.ended_at, r.ended_by = now, actor
        append(
            session,
            incident,
            EventKind.role_change,
            actor,
            now,
            {"role": change.role, "person": change.person, "action": "unassign", "previous": None},
        )
    _touch(incident, now)
    return incident


async def record(
    session: AsyncSession, clock: Clock, incident: Incident, kind: EventKind, actor: str, data: dict[str, Any]
) -> TimelineEvent:
    """Append a note, command, assignment or action taken."""
    now = clock.now()
    _touch(incident, now)
    return append(session, incident, kind, actor, now, data)


async def post_update(
    session: AsyncSession, clock: Clock, policy: Policy, incident: Incident, actor: str, text: str
) -> TimelineEvent:
    """A management update: restarts the update cadence."""
    now = clock.now()
    incident.last_update_at = now
    sla.apply(policy, incident)
    _touch(incident, now)
    event = append(session, incident, EventKind.update, actor, now, {"text": text})
    await replan(session, policy, incident, now)
    return event


async def role_history(session: AsyncSession, incident_ids: Sequence[int]) -> dict[int, list[RoleAssignment]]:
    """Every role assignment, past and present, of the given incidents."""
    out: dict[int, list[RoleAssignment]] = {i: [] for i in incident_ids}
    if not incident_ids:
        return out
    rows = await session.scalars(
        select(RoleAssignment)
        .where(RoleAssignment.incident_id.in_(list(incident_ids)))
        .order_by(RoleAssignment.id)
    )
    for row in rows:
        out[row.incident_id].append(row)
    return out


async def open_incidents(session: AsyncSession) -> list[Incident]:
    return list(await session.scalars(select(Incident).where(Incident.status.in_([s.value for s in ACTIVE]))))
