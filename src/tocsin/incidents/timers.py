"""Which timers an incident has: derived from its state and deadlines after every change.

`replan` runs in the transaction of each change (declared, acknowledged, status, severity, update
posted, reopened) and makes the pending timers match the incident: a deadline that moved moves its
timer, a deadline that no longer applies (acknowledged, resolved) cancels it. A reminder timer that
already fired and re-armed itself for the same deadline is left alone, so a change never repeats a
reminder. The handlers are in incidents/jobs.py (reminders, watch) and oncall/jobs.py (paging).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.engine import timers
from tocsin.incidents.lifecycle import MITIGATED, Status, is_open
from tocsin.incidents.models import Incident
from tocsin.policy.models import Policy

ASSEMBLE = "incident.assemble"  # page the team for the severity (again, for new targets, when it rises)
ANNOUNCE = "incident.announce"  # the alerts-channel message, updated in place
RESPONSE = "incident.response"  # unacknowledged at the response deadline: escalate
ESCALATE = "incident.escalate"  # unresolved at the severity's escalate_after: escalate
UPDATE = "incident.update"  # a management update is due: remind the commander
STATUS_PAGE = "incident.status_page"  # the first status page update is due: remind communications
MEETING = "incident.meeting"  # extended incidents: a status meeting every 2 hours
WATCH = "incident.watch"  # the stability watch ends

DEADLINE_KINDS = (RESPONSE, ESCALATE, UPDATE, STATUS_PAGE, MEETING, WATCH)
# Timers of other domains that belong to one incident and stop when it is acknowledged or resolved.
PAGE_NOTIFY = "page.notify"
ESCALATION_STEP = "escalation.step"


def _deadlines(policy: Policy, incident: Incident) -> dict[str, datetime | None]:
    open_ = is_open(incident.status)
    status = Status(incident.status)
    remind = policy.paging.reminder_every
    status_page = None
    if open_ and incident.status_page_due_at is not None and incident.status_page_updated_at is None:
        status_page = max(incident.status_page_due_at - remind, incident.detected_at)
    return {
        RESPONSE: incident.response_due_at if open_ and incident.acknowledged_at is None else None,
        ESCALATE: incident.escalation_due_at if open_ else None,
        UPDATE: incident.next_update_due_at if open_ else None,
        STATUS_PAGE: status_page,
        MEETING: incident.detected_at + policy.communication.status_meetings_every if open_ else None,
        WATCH: incident.watch_until if open_ and status in MITIGATED else None,
    }


async def replan(
    session: AsyncSession,
    policy: Policy,
    incident: Incident,
    now: datetime,
    *,
    assemble: bool = False,
    fresh: bool = False,
) -> None:
    """Make the incident's pending timers match its state; `assemble` pages the team now.

    `fresh`: the incident was just created, so it has no timers yet (one statement saved on the
    path from an alert to a page).
    """
    key = str(incident.id)
    existing = {} if fresh else {t.kind: t for t in await timers.of_incident(session, incident.id)}
    plans: list[timers.Plan] = []
    for kind, due in _deadlines(policy, incident).items():
        timer = existing.get(kind)
        if due is None:
            if timer is not None and timer.fired_at is None:
                await timers.cancel(session, kind, key)
            continue
        if timer is not None and timer.payload.get("for") == due.isoformat():
            continue  # planned (or fired, or re-armed as a repeat) for this very deadline: leave it
        plans.append(timers.Plan(kind, key, due, {"for": due.isoformat()}, incident.id))
    if not is_open(incident.status):
        await timers.cancel_for(session, incident.id, (PAGE_NOTIFY, ESCALATION_STEP))
    elif incident.acknowledged_at is not None and not fresh:
        await timers.cancel_for(session, incident.id, (PAGE_NOTIFY,))
    if assemble and is_open(incident.status):
        plans.append(timers.Plan(ASSEMBLE, key, now, {}, incident.id))
    plans.append(timers.Plan(ANNOUNCE, key, now, {}, incident.id))
    await timers.schedule_many(session, now, plans)
