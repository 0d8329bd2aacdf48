"""The SLA clock: every deadline of an incident, derived from the policy and its timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tocsin.incidents.models import Incident
from tocsin.policy.models import Policy


@dataclass(frozen=True)
class Deadlines:
    response_due_at: datetime
    resolution_due_at: datetime
    escalation_due_at: datetime | None
    next_update_due_at: datetime | None
    status_page_due_at: datetime | None


def plan(policy: Policy, incident: Incident) -> Deadlines:
    """Deadlines for the incident's current severity, always counted from its detection."""
    sev = policy.severity(incident.severity)
    detected = incident.detected_at
    open_ = incident.resolved_at is None
    cadence = sev.management_updates
    next_update = None
    if open_ and cadence is not None:
        next_update = (incident.last_update_at or detected) + cadence
    status_page_due = None
    if incident.customer_facing or not policy.status_page.customer_facing_only:
        status_page_due = detected + policy.status_page.update_within
    return Deadlines(
        response_due_at=policy.deadline(detected, sev.response),
        resolution_due_at=policy.deadline(detected, sev.resolution),
        escalation_due_at=detected + sev.escalate_after if sev.escalate_after is not None else None,
        next_update_due_at=next_update,
        status_page_due_at=status_page_due,
    )


def apply(policy: Policy, incident: Incident) -> None:
    """Store the planned deadlines on the incident row."""
    d = plan(policy, incident)
    incident.response_due_at = d.response_due_at
    incident.resolution_due_at = d.resolution_due_at
    incident.escalation_due_at = d.escalation_due_at
    incident.next_update_due_at = d.next_update_due_at
    incident.status_page_due_at = d.status_page_due_at


@dataclass(frozen=True)
class Breaches:
    response: bool
    resolution: bool
    escalation: bool
    update: bool
    status_page: bool

    @property
    def any(self) -> bool:
        return self.response or self.resolution or self.update or self.status_page


def breaches(incident: Incident, now: datetime) -> Breaches:
    """Which deadlines are missed, judged at `now` for those still running."""
    ack = incident.acknowledged_at or now
    resolved = incident.resolved_at or now
    open_ = incident.resolved_at is None
    page_done = incident.status_page_updated_at or now
    return Breaches(
        response=ack > incident.response_due_at,
        resolution=resolved > incident.resolution_due_at,
        escalation=open_ and incident.escalation_due_at is not None and now >= incident.escalation_due_at,
        update=open_ and incident.next_update_due_at is not None and now > incident.next_update_due_at,
        status_page=incident.status_page_due_at is not None and page_done > incident.status_page_due_at,
    )


def time_to(start: datetime, end: datetime | None) -> timedelta | None:
    return None if end is None else end - start
