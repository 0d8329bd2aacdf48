"""Turn incident rows into the shapes the API, CLI and console show."""

from __future__ import annotations

from datetime import datetime

from tocsin.core.ids import incident_ref
from tocsin.incidents import schemas, sla
from tocsin.incidents.lifecycle import Status, allowed
from tocsin.incidents.models import Incident, RoleAssignment, TimelineEvent


def roles(assignments: list[RoleAssignment]) -> schemas.Roles:
    live = [a for a in assignments if a.ended_at is None]

    def holder(role: str) -> str | None:
        return next((a.person for a in live if a.role == role), None)

    return schemas.Roles(
        commander=holder("commander"),
        scribe=holder("scribe"),
        communications=holder("communications"),
        responders=[a.person for a in live if a.role == "responder"],
    )


def sla_view(incident: Incident, now: datetime) -> schemas.Sla:
    b = sla.breaches(incident, now)
    tta = sla.time_to(incident.detected_at, incident.acknowledged_at)
    ttr = sla.time_to(incident.detected_at, incident.resolved_at)
    return schemas.Sla(
        response_due_at=incident.response_due_at,
        resolution_due_at=incident.resolution_due_at,
        escalation_due_at=incident.escalation_due_at,
        next_update_due_at=incident.next_update_due_at,
        status_page_due_at=incident.status_page_due_at,
        response_breached=b.response,
        resolution_breached=b.resolution,
        escalation_due=b.escalation,
        update_overdue=b.update,
        status_page_breached=b.status_page,
        time_to_acknowledge_seconds=tta.total_seconds() if tta is not None else None,
        time_to_resolve_seconds=ttr.total_seconds() if ttr is not None else None,
    )


def incident(row: Incident, assignments: list[RoleAssignment], now: datetime, tz: str) -> schemas.IncidentOut:
    return schemas.IncidentOut(
        id=incident_ref(row.id),
        number=row.id,
        title=row.title,
        description=row.description,
        severity=row.severity,
        status=Status(row.status),
        source=row.source,
        customer_facing=row.customer_facing,
        services=row.services,
        components=row.components,
        channel=row.channel,
        detected_at=row.detected_at,
        acknowledged_at=row.acknowledged_at,
        mitigated_at=row.mitigated_at,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        last_update_at=row.last_update_at,
        resolved_itself=row.resolved_itself,
        flaps=row.flaps,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        timezone=tz,
        sla=sla_view(row, now),
        roles=roles(assignments),
        allowed_transitions=list(allowed(Status(row.status))),
    )


def event(row: TimelineEvent) -> schemas.EventOut:
    return schemas.EventOut(
        seq=row.seq, kind=row.kind, actor=row.actor, at=row.at, data=row.data, hash=row.hash
    )


def role_history(assignments: list[RoleAssignment]) -> list[schemas.RoleOut]:
    return [
        schemas.RoleOut(
            role=a.role,
            person=a.person,
            assigned_at=a.assigned_at,
            assigned_by=a.assigned_by,
            ended_at=a.ended_at,
            ended_by=a.ended_by,
        )
        for a in assignments
    ]
