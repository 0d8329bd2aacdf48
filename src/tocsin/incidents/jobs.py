"""Timer handlers of the communication cadence: the alerts-channel announcement, management-update and
status-page reminders, status meetings for extended incidents, and the end of the stability watch."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.durations import format_duration
from tocsin.core.ids import incident_ref
from tocsin.engine import timers
from tocsin.engine.models import Timer
from tocsin.engine.worker import Firing
from tocsin.incidents import present
from tocsin.incidents import service as incidents
from tocsin.incidents import timers as planned
from tocsin.incidents.lifecycle import MITIGATED, Status, is_open
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind, append
from tocsin.notify import service as outbox
from tocsin.oncall import service as oncall
from tocsin.oncall.jobs import for_incident, late
from tocsin.oncall.paging import ACTOR, Paging, direct, pages_of, to_channel

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

ICONS = {"resolved": "✅", "closed": "✅", "monitoring": "🟡", "mitigated": "🟡"}


def _minutes(delta: timedelta) -> str:
    return format_duration(
        timedelta(minutes=max(int(delta.total_seconds() // 60), 0)) or timedelta(minutes=0)
    )


async def _roles(session: AsyncSession, incident: Incident) -> Any:
    return present.roles((await incidents.role_history(session, [incident.id]))[incident.id])


async def announce(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """One message per incident in the alerts channel, edited in place as the incident changes."""
    roles = await _roles(session, incident)
    icon = ICONS.get(incident.status, "🔴" if ctx.policy.severity(incident.severity).rank <= 1 else "🟠")
    lines = [
        f"{icon} [{incident.severity}] {incident_ref(incident.id)}: {incident.title}",
        f"Status: {incident.status} · detected {incident.detected_at.astimezone(ctx.policy.tz):%Y-%m-%d %H:%M %Z}",
        f"Incident channel: {incident.channel} · commander: {roles.commander or 'unassigned'}",
        ctx.links.incident(incident.id),
    ]
    await to_channel(
        session,
        ctx,
        firing.now,
        incident,
        ctx.policy.channels.alerts,
        "announce",
        f"announce:{incident.id}:{incident.last_seq}:{incident.status}:{incident.severity}",
        {"text": "\n".join(lines)},
        thread=f"announce:{incident.id}",
    )


async def _again(session: AsyncSession, timer: Timer, now: datetime, after: timedelta) -> None:
    """Re-arm a repeating reminder for the same deadline, counting the repeats."""
    payload = {**timer.payload, "repeat": int(timer.payload.get("repeat", 0)) + 1}
    await timers.schedule(
        session, now, timer.kind, timer.key, now + after, payload, incident_id=timer.incident_id
    )


async def _posted(
    session: AsyncSession,
    ctx: Paging,
    incident: Incident,
    timer: Timer,
    firing: Firing,
    kind: str,
    key: str,
    text: str,
    data: dict[str, Any],
    every: timedelta,
) -> None:
    """Post the reminder in the incident channel, note it on the timeline and re-arm it `every` later."""
    now = firing.now
    await to_channel(session, ctx, now, incident, incident.channel, kind, f"{key}:channel", {"text": text})
    append(session, incident, EventKind.reminder, ACTOR, now, {**data, **late(firing)})
    await _again(session, timer, now, every)


async def _remind(
    session: AsyncSession,
    ctx: Paging,
    incident: Incident,
    timer: Timer,
    firing: Firing,
    who: list[str],
    what: str,
    text: str,
) -> None:
    """Tell `who` (else the incident channel), note it on the timeline and re-arm while it stays due."""
    now = firing.now
    repeat = int(timer.payload.get("repeat", 0))
    key = f"remind:{timer.kind}:{incident.id}:{timer.payload.get('for')}:{repeat}"
    reached = [
        name
        for name in who
        if await direct(
            session, ctx, now, incident, name, "reminder", key, {"text": text, "subject": f"Reminder: {what}"}
        )
    ]
    data = {"reminder": what, "to": reached or [incident.channel], "repeat": repeat}
    await _posted(
        session, ctx, incident, timer, firing, "reminder", key, text, data, ctx.policy.paging.reminder_every
    )


async def update_due(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """A management update is due (P0/P1 every 30 min, P2 hourly): remind the commander; count it missed."""
    due = incident.next_update_due_at
    if not is_open(incident.status) or due is None or due > firing.now:
        return
    if int(timer.payload.get("repeat", 0)) == 0:
        incident.missed_updates += 1
    roles = await _roles(session, incident)
    who = (
        [roles.commander] if roles.commander else [p.person for p in await pages_of(session, incident.id)][:3]
    )
    text = (
        f"{incident_ref(incident.id)} [{incident.severity}] {incident.title}: a management update was due at "
        f"{due.astimezone(ctx.policy.tz):%H:%M %Z} ({_minutes(firing.now - due)} ago). Post one: "
        f'tocsin incident update {incident_ref(incident.id)} "..." or {ctx.links.incident(incident.id)}'
    )
    await _remind(session, ctx, incident, timer, firing, who, "management update", text)


async def status_page_due(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """Customer-facing: remind the communications lead until the status page has its first update."""
    due = incident.status_page_due_at
    if not is_open(incident.status) or due is None or incident.status_page_updated_at is not None:
        return
    roles = await _roles(session, incident)
    who = [r for r in (roles.communications, roles.commander) if r][:1]
    when = (
        f"overdue by {_minutes(firing.now - due)}"
        if firing.now >= due
        else f"due in {_minutes(due - firing.now)}"
    )
    text = (
        f"{incident_ref(incident.id)} [{incident.severity}] {incident.title} is customer-facing: the status page "
        f"update is {when} ({due.astimezone(ctx.policy.tz):%H:%M %Z}). {ctx.links.incident(incident.id)}"
    )
    await _remind(session, ctx, incident, timer, firing, who, "status page update", text)


def invite(incident: Incident, start: datetime, length: timedelta, url: str, seq: int) -> str:
    """An iCal (RFC 5545) meeting request for the status meeting."""

    def stamp(t: datetime) -> str:
        return t.strftime("%Y%m%dT%H%M%SZ")

    summary = f"Status meeting: {incident_ref(incident.id)} {incident.title}".replace("\n", " ")
    for char in ("\\", ";", ","):
        summary = summary.replace(char, "\\" + char)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Tocsin//Incident response//EN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:meeting-{incident.id}-{seq}@tocsin",
        f"DTSTAMP:{stamp(start)}",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(start + length)}",
        f"SUMMARY:{summary[:60]}",
        f"URL:{url}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"


async def meeting(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """Extended incidents: a status meeting every 2 hours, with an invite to responders and management."""
    if not is_open(incident.status):
        return
    now = firing.now
    seq = int(timer.payload.get("repeat", 0))
    roles = await _roles(session, incident)
    team = oncall.team_for(ctx.policy, incident.services)
    management = [
        n for n, _ in await oncall.resolve_page_targets(session, ctx.policy, now, team, ["management"])
    ]
    people = list(
        dict.fromkeys(
            [r for r in (roles.commander, roles.communications, roles.scribe) if r]
            + list(roles.responders)
            + [p.person for p in await pages_of(session, incident.id)]
            + management
        )
    )
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=5)
    ics = invite(incident, start, timedelta(minutes=30), ctx.links.incident(incident.id), seq)
    open_for = _minutes(now - incident.detected_at)
    text = (
        f"Status meeting for {incident_ref(incident.id)} [{incident.severity}] {incident.title} at "
        f"{start.astimezone(ctx.policy.tz):%H:%M %Z} (open for {open_for}). {ctx.links.incident(incident.id)}"
    )
    key = f"meeting:{incident.id}:{seq}"
    invited = []
    for name in people:
        person = ctx.person(name)
        if person is not None and person.email:
            await outbox.enqueue(
                session,
                now,
                channel="email",
                target=person.email,
                kind="meeting",
                key=f"{key}:{name}",
                payload={
                    "subject": f"Status meeting: {incident_ref(incident.id)} {incident.title}",
                    "text": text,
                    "attachments": [
                        {
                            "filename": "invite.ics",
                            "content_type": "text/calendar; method=REQUEST",
                            "content": ics,
                        }
                    ],
                },
                incident_id=incident.id,
                person=name,
            )
            invited.append(name)
    data = {"reminder": "status meeting", "invited": invited, "at": start.isoformat()}
    every = ctx.policy.communication.status_meetings_every
    await _posted(session, ctx, incident, timer, firing, "meeting", key, text, data, every)


async def watch_over(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """The stability watch ends: ready to resolve, or restarted while alerts still fire."""
    if not is_open(incident.status) or Status(incident.status) not in MITIGATED:
        return
    now = firing.now
    firing_alerts = await incidents.firing_alerts(session, incident.id)
    if firing_alerts:
        incident.watch_until = now + ctx.policy.communication.stability_watch
        append(
            session,
            incident,
            EventKind.reminder,
            ACTOR,
            now,
            {
                "reminder": "stability watch restarted",
                "firing_alerts": firing_alerts,
                "watch_until": incident.watch_until.isoformat(),
            },
        )
        await planned.replan(session, ctx.policy, incident, now)
        return
    roles = await _roles(session, incident)
    text = (
        f"{incident_ref(incident.id)} has been stable for {format_duration(ctx.policy.communication.stability_watch)}"
        f" with no alert firing: ready to resolve. {ctx.links.incident(incident.id)}"
    )
    append(
        session,
        incident,
        EventKind.reminder,
        ACTOR,
        now,
        {"reminder": "stability watch passed", **late(firing)},
    )
    if roles.commander:
        await direct(
            session,
            ctx,
            now,
            incident,
            roles.commander,
            "reminder",
            f"watch:{incident.id}:{timer.payload.get('for')}",
            {"text": text},
        )


def register(rt: Runtime) -> None:
    rt.handlers[planned.ANNOUNCE] = for_incident(rt, announce)
    rt.handlers[planned.UPDATE] = for_incident(rt, update_due)
    rt.handlers[planned.STATUS_PAGE] = for_incident(rt, status_page_due)
    rt.handlers[planned.MEETING] = for_incident(rt, meeting)
    rt.handlers[planned.WATCH] = for_incident(rt, watch_over)
