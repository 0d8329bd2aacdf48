"""Timer handlers of paging: team assembly, escalation on missed deadlines, chain steps, delayed rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.durations import format_duration
from tocsin.core.ids import incident_ref
from tocsin.db.engine import publish_after_commit
from tocsin.engine import secrets
from tocsin.engine.models import Timer
from tocsin.engine.worker import Firing
from tocsin.incidents import service as incidents
from tocsin.incidents import timers as planned
from tocsin.incidents.lifecycle import is_open
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind, append
from tocsin.notify import service as outbox
from tocsin.oncall import escalation
from tocsin.oncall import service as oncall
from tocsin.oncall.models import Page
from tocsin.oncall.paging import ACTOR, Links, Paging, page, send_rule

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

LATE = timedelta(minutes=1)  # a timer this late says so on the timeline


def late(firing: Firing) -> dict[str, Any]:
    """`{"late_by": "2h5m"}` when the timer fired noticeably late (after downtime), else nothing."""
    if firing.late < LATE:
        return {}
    return {"late_by": format_duration(timedelta(seconds=int(firing.late.total_seconds())))}


async def paging_context(rt: Runtime, session: AsyncSession | None = None) -> Paging:
    """The paging context of this process (the signing key is read once; inside a transaction, pass it)."""
    if rt.paging is None:
        if session is not None:
            key = await secrets.signing_key_in(session, rt.settings.secret_key)
        else:
            key = await secrets.signing_key(rt.db, rt.settings.secret_key)
        base = (rt.settings.public_url or f"http://{rt.settings.host}:{rt.settings.port}").rstrip("/")
        rt.paging = Paging(rt.policy, Links(base, key), slack=bool(rt.settings.slack_token))
    return rt.paging


IncidentHandler = Callable[[AsyncSession, Paging, Incident, Timer, Firing], Awaitable[None]]


def for_incident(
    rt: Runtime, handler: IncidentHandler
) -> Callable[[AsyncSession, Timer, Firing], Awaitable[None]]:
    """Adapt a handler that works on the timer's incident (locked for update) and the paging context."""

    async def run(session: AsyncSession, timer: Timer, firing: Firing) -> None:
        if timer.incident_id is None:
            return
        incident = await incidents.get(session, timer.incident_id, for_update=True)
        await handler(session, await paging_context(rt, session), incident, timer, firing)
        publish_after_commit(session, f"incident:{incident.id}", "incidents")

    return run


async def assemble(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """Team assembly by severity: P0/P1 the full on-call team and management, P2 primary and backup, P3 primary."""
    if not is_open(incident.status):
        return
    now = firing.now
    if late(firing):
        append(session, incident, EventKind.reminder, ACTOR, now, {"timer": "team assembly", **late(firing)})
    severity = ctx.policy.severity(incident.severity)
    team = oncall.team_for(ctx.policy, incident.services)
    targets = await oncall.resolve_page_targets(session, ctx.policy, now, team, list(severity.page))
    if not targets:
        append(
            session,
            incident,
            EventKind.page,
            ACTOR,
            now,
            {
                "nobody": f"nobody is on call for {', '.join(severity.page)}"
                + (f" in team {team.name}" if team is not None else " (the policy has no teams)"),
                **late(firing),
            },
        )
    # An incident reopened by its alert coming back (flapping) pages its team again, once a reopening.
    step, again = (
        ("assembly", "")
        if not incident.flaps
        else (f"assembly:reopened {incident.flaps}", " (reopened: its alert came back)")
    )
    for name, why in targets:
        reason = f"{severity.key} {severity.name}: paged as {why}{again}"
        await page(session, ctx, now, incident, name, step, reason)
    await _incident_channel(session, ctx, incident, now, [name for name, _ in targets])


async def _incident_channel(
    session: AsyncSession, ctx: Paging, incident: Incident, now: Any, people: list[str]
) -> None:
    """Create the incident's Slack channel and invite the people paged (again for newcomers)."""
    if not ctx.slack:
        return
    members = sorted({p.slack for n in people if (p := ctx.person(n)) is not None and p.slack})
    await outbox.enqueue(
        session,
        now,
        channel="slack",
        target=incident.channel,
        kind="channel",
        key=f"channel:{incident.id}:{','.join(members)}"[:200],
        payload={
            "op": "create_channel",
            "name": incident.channel.lstrip("#"),
            "invite": members,
            "text": f"{incident_ref(incident.id)}: {incident.title}",
        },
        incident_id=incident.id,
    )


async def _missed(
    session: AsyncSession,
    ctx: Paging,
    incident: Incident,
    firing: Firing,
    deadline: str,
    why: str,
    chains: list[str],
    trigger: str,
) -> None:
    """A deadline passed: say so on the timeline and start the chains."""
    data = {"deadline": deadline, "missed": why, **late(firing)}
    append(session, incident, EventKind.reminder, ACTOR, firing.now, data)
    for chain in chains:
        await escalation.start(session, ctx, firing.now, incident, chain, trigger, why)


async def response_missed(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """Unacknowledged at the response deadline: the page goes up the chain."""
    if not is_open(incident.status) or incident.acknowledged_at is not None:
        return
    sev = ctx.policy.severity(incident.severity)
    why = f"not acknowledged within {sev.response} ({sev.key})"
    chain = ctx.policy.paging.unacknowledged
    await _missed(
        session, ctx, incident, firing, "response", why, [chain] if chain else [], escalation.UNACKNOWLEDGED
    )


async def unresolved(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """Unresolved at the severity's escalate_after (P0 30 min, P1 2 h, P2 8 h): escalate."""
    if not is_open(incident.status):
        return
    sev = ctx.policy.severity(incident.severity)
    why = f"unresolved after {format_duration(sev.escalate_after) if sev.escalate_after else '?'} ({sev.key})"
    await _missed(
        session, ctx, incident, firing, "escalation", why, ctx.policy.paging.unresolved, escalation.UNRESOLVED
    )


async def step(session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing) -> None:
    """The next step of a running chain is due."""
    chain = str(timer.payload.get("chain"))
    found = next((e for e in await escalation.running(session, incident.id) if e.chain == chain), None)
    if found is None or found.finished_at is not None:
        return
    if late(firing):
        append(session, incident, EventKind.escalation, ACTOR, firing.now, {"chain": chain, **late(firing)})
    await escalation.advance(session, ctx, firing.now, incident, found)


async def delayed_rule(
    session: AsyncSession, ctx: Paging, incident: Incident, timer: Timer, firing: Firing
) -> None:
    """A notification rule with a delay ("email after 5 min"): sent only if still unacknowledged."""
    if not is_open(incident.status) or incident.acknowledged_at is not None:
        return
    row = await session.get(Page, int(timer.payload["page"]))
    person = ctx.person(row.person) if row is not None else None
    index = int(timer.payload["rule"])
    if row is None or person is None or row.acknowledged_at is not None:
        return
    rules = person.rules(ctx.policy.paging.default_notify)
    if late(firing):
        append(
            session,
            incident,
            EventKind.reminder,
            ACTOR,
            firing.now,
            {"timer": f"page {row.person}", **late(firing)},
        )
    if index < len(rules):
        await send_rule(session, ctx, firing.now, incident, row, index, rules[index])


def register(rt: Runtime) -> None:
    rt.handlers[planned.ASSEMBLE] = for_incident(rt, assemble)
    rt.handlers[planned.RESPONSE] = for_incident(rt, response_missed)
    rt.handlers[planned.ESCALATE] = for_incident(rt, unresolved)
    rt.handlers[planned.ESCALATION_STEP] = for_incident(rt, step)
    rt.handlers[planned.PAGE_NOTIFY] = for_incident(rt, delayed_rule)
    rt.urgent.update(
        {planned.ASSEMBLE, planned.RESPONSE, planned.ESCALATE, planned.ESCALATION_STEP, planned.PAGE_NOTIFY}
    )
