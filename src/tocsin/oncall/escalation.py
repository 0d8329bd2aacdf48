"""Escalation chains running for an incident: one step at a time, with its delay, repeated as set.

The seed's chains (technical: Senior Engineer -> Engineering Manager -> CTO; business: Incident
Commander -> Product Manager -> CEO) start when an incident is still unacknowledged at its response
deadline or unresolved at its severity's `escalate_after`, or by hand ("escalate now"). A step with
nobody on call is skipped with a note on the timeline, never a silent stop; a chain that runs out says
so too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.errors import InvalidInput
from tocsin.core.ids import incident_ref
from tocsin.engine import timers
from tocsin.incidents.lifecycle import is_open
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind, append
from tocsin.incidents.timers import ESCALATION_STEP
from tocsin.oncall import service as oncall
from tocsin.oncall.models import Escalation
from tocsin.oncall.paging import ACTOR, Paging, page, to_channel
from tocsin.policy.models import EscalationChain

UNACKNOWLEDGED = "unacknowledged"
UNRESOLVED = "unresolved"
MANUAL = "manual"
DEFAULT_ROUND_DELAY = timedelta(minutes=15)


def _key(incident: Incident, chain: str) -> str:
    return f"{incident.id}:{chain}"


def _chain(ctx: Paging, name: str) -> EscalationChain:
    chain = ctx.policy.escalation_chains.get(name)
    if chain is None:
        known = ", ".join(sorted(ctx.policy.escalation_chains)) or "none"
        raise InvalidInput(f"unknown escalation chain {name!r}; known: {known}", field="chain")
    return chain


async def running(session: AsyncSession, incident_id: int) -> list[Escalation]:
    query = select(Escalation).where(Escalation.incident_id == incident_id).order_by(Escalation.id)
    return list(await session.scalars(query))


async def start(
    session: AsyncSession,
    ctx: Paging,
    now: datetime,
    incident: Incident,
    chain_name: str,
    trigger: str,
    why: str,
) -> Escalation:
    """Start the chain (or restart a finished one) and run its first step now; a running one is left."""
    _chain(ctx, chain_name)
    found = await session.scalar(
        select(Escalation)
        .where(Escalation.incident_id == incident.id, Escalation.chain == chain_name)
        .with_for_update()
    )
    if found is not None and found.finished_at is None:
        return found
    if found is None:
        found = Escalation(
            incident_id=incident.id, chain=chain_name, trigger=trigger, step=0, round=0, started_at=now
        )
        session.add(found)
    else:
        found.trigger, found.step, found.round, found.started_at, found.finished_at = trigger, 0, 0, now, None
    await session.flush()
    append(
        session,
        incident,
        EventKind.escalation,
        ACTOR,
        now,
        {"chain": chain_name, "started": trigger, "why": why},
    )
    await advance(session, ctx, now, incident, found)
    return found


def stopped_because(incident: Incident, escalation: Escalation) -> str | None:
    """Why a chain should not go on: the incident is closed, or acknowledged for an unacknowledged one."""
    if not is_open(incident.status):
        return f"{incident_ref(incident.id)} is {incident.status}"
    if escalation.trigger == UNACKNOWLEDGED and incident.acknowledged_at is not None:
        return f"{incident_ref(incident.id)} was acknowledged"
    return None


async def advance(
    session: AsyncSession, ctx: Paging, now: datetime, incident: Incident, escalation: Escalation
) -> None:
    """Run the chain's current step, then plan the next one (or finish)."""
    chain = _chain(ctx, escalation.chain)
    team = oncall.team_for(ctx.policy, incident.services)
    for _ in range(len(chain.steps) * (chain.repeat + 1)):  # steps with no delay run together
        reason = stopped_because(incident, escalation)
        if reason is not None:
            _finish(session, now, incident, escalation, {"stopped": reason})
            return
        await _run_step(session, ctx, now, incident, escalation, chain, team)
        delay = _next(escalation, chain)
        if delay is None:
            rounds = f"all {len(chain.steps)} steps, {chain.repeat + 1} round(s)"
            _finish(session, now, incident, escalation, {"exhausted": rounds})
            return
        if delay > timedelta(0):
            await timers.schedule(
                session,
                now,
                ESCALATION_STEP,
                _key(incident, escalation.chain),
                now + delay,
                {"chain": escalation.chain, "step": escalation.step, "round": escalation.round},
                incident_id=incident.id,
            )
            return


def _finish(
    session: AsyncSession, now: datetime, incident: Incident, escalation: Escalation, why: dict[str, str]
) -> None:
    escalation.finished_at = now
    append(session, incident, EventKind.escalation, ACTOR, now, {"chain": escalation.chain, **why})


def _next(escalation: Escalation, chain: EscalationChain) -> timedelta | None:
    """Move to the next step and return its delay; None when the chain has run out."""
    escalation.step += 1
    if escalation.step < len(chain.steps):
        return chain.steps[escalation.step].after
    if escalation.round >= chain.repeat:
        return None
    escalation.round += 1
    escalation.step = 0
    # A new round should not page again the same instant: wait the first step's delay, else the longest.
    return (
        chain.steps[0].after
        or max((s.after for s in chain.steps), default=timedelta(0))
        or DEFAULT_ROUND_DELAY
    )


async def _run_step(
    session: AsyncSession,
    ctx: Paging,
    now: datetime,
    incident: Incident,
    escalation: Escalation,
    chain: EscalationChain,
    team: Any,
) -> None:
    step = chain.steps[escalation.step]
    label = f"escalation:{escalation.chain}:{escalation.round}:{escalation.step}"
    where = {
        "chain": escalation.chain,
        "step": escalation.step + 1,
        "round": escalation.round + 1,
        "role": step.role,
    }
    title = chain.title or escalation.chain
    if step.channel is not None:
        await to_channel(
            session,
            ctx,
            now,
            incident,
            step.channel,
            "escalation",
            f"{label}:{incident.id}:channel",
            {
                "text": f"Escalation ({title}, {step.role}): [{incident.severity}] {incident_ref(incident.id)}: {incident.title}\n{ctx.links.incident(incident.id)}"
            },
        )
        append(session, incident, EventKind.escalation, ACTOR, now, {**where, "channel": step.channel})
        return
    people = await oncall.resolve_step(session, ctx.policy, now, step, team)
    if not people:
        append(
            session,
            incident,
            EventKind.escalation,
            ACTOR,
            now,
            {**where, "skipped": f"nobody is on call for {step.role}"},
        )
        return
    append(session, incident, EventKind.escalation, ACTOR, now, {**where, "people": people})
    for name in people:
        await page(session, ctx, now, incident, name, label, f"Escalation ({title}): {step.role}")


async def escalate_now(
    session: AsyncSession,
    ctx: Paging,
    now: datetime,
    incident: Incident,
    actor: str,
    chain: str | None,
    reason: str,
) -> None:
    """ "Escalate now": the running chain's next step at once, or start the chain."""
    if not is_open(incident.status):
        raise InvalidInput(
            f"{incident_ref(incident.id)} is {incident.status}; only open incidents escalate", field="id"
        )
    name = chain or ctx.policy.paging.unacknowledged or next(iter(ctx.policy.escalation_chains), None)
    if name is None:
        raise InvalidInput("the policy has no escalation chains", field="chain")
    _chain(ctx, name)
    append(
        session,
        incident,
        EventKind.escalation,
        actor,
        now,
        {"chain": name, "requested": reason or "escalate now"},
    )
    current = next((e for e in await running(session, incident.id) if e.chain == name), None)
    if current is None or current.finished_at is not None:
        await start(session, ctx, now, incident, name, MANUAL, reason or f"escalated by {actor}")
        return
    current.trigger = MANUAL  # asked for by hand: goes on until resolved, acknowledged or not
    await timers.cancel(session, ESCALATION_STEP, _key(incident, name))
    await advance(session, ctx, now, incident, current)
