"""The incident page's Paging card: who was paged and how it went, escalations, reminders, deliveries.

Read-only: it gathers what the engine wrote (pages, escalations, timers, outbox rows) through those
domains' services and words it for the console. Times stay datetimes; the template shows them in the
policy's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.engine import timers
from tocsin.engine.models import Timer
from tocsin.incidents import timers as planned
from tocsin.incidents.lifecycle import MITIGATED, Status, is_open
from tocsin.incidents.models import Incident
from tocsin.notify import service as outbox
from tocsin.oncall import escalation
from tocsin.oncall.models import Escalation, Page
from tocsin.oncall.paging import pages_of
from tocsin.policy.models import Policy

FAILED_SHOWN = 5  # the newest failed deliveries listed with their error

# Pending timers the card lists as reminders, in words.
REMINDERS = {
    planned.UPDATE: "Management update due",
    planned.STATUS_PAGE: "Status page reminder",
    planned.MEETING: "Status meeting",
    planned.WATCH: "Stability watch ends",
    planned.RESPONSE: "Escalates if unacknowledged",
    planned.ESCALATE: "Escalates if unresolved",
}


@dataclass(frozen=True)
class PageRow:
    """One page: who, when, at which step, and whether (and how) it was acknowledged."""

    id: int
    person: str
    at: datetime
    where: str
    reason: str
    acknowledged_at: datetime | None
    acknowledged_via: str | None


@dataclass(frozen=True)
class EscalationRow:
    """A chain that ran or runs for the incident: the step it reached, and when the next one is due."""

    chain: str
    title: str
    trigger: str
    next_role: str | None
    step: int  # 1-based
    steps: int
    round: int  # 1-based
    started_at: datetime
    finished_at: datetime | None
    due_at: datetime | None


@dataclass(frozen=True)
class Reminder:
    label: str
    due_at: datetime
    nth: str  # "reminder 3", "meeting 2": which one comes next, when not the first


@dataclass(frozen=True)
class Failure:
    channel: str
    target: str
    kind: str
    error: str


@dataclass(frozen=True)
class PagingPanel:
    pages: list[PageRow]
    escalations: list[EscalationRow]
    reminders: list[Reminder]
    deliveries: dict[str, int]
    failures: list[Failure]
    chains: dict[str, str]  # name -> title, for the escalate-now form
    default_chain: str | None
    update_overdue_since: datetime | None
    missed_updates: int
    watch_until: datetime | None  # the stability watch, while it runs
    open: bool


def step_words(policy: Policy, step: str) -> str:
    """`assembly` or `escalation:technical:0:1` in words: "Team assembly", "Technical escalation, step 2 (...)"."""
    if step == "assembly" or step.startswith("assembly:"):
        return "Team assembly"
    parts = step.split(":")
    if len(parts) == 4 and parts[0] == "escalation" and parts[2].isdigit() and parts[3].isdigit():
        name, round_, index = parts[1], int(parts[2]), int(parts[3])
        chain = policy.escalation_chains.get(name)
        title = (chain.title if chain is not None else "") or f"{name} escalation"
        role = chain.steps[index].role if chain is not None and index < len(chain.steps) else ""
        words = f"{title}, step {index + 1}" + (f" ({role})" if role else "")
        return words + (f", round {round_ + 1}" if round_ else "")
    return step


def _nth(timer: Timer) -> str:
    repeat = int(timer.payload.get("repeat", 0))
    if not repeat:
        return ""
    return f"{'meeting' if timer.kind == planned.MEETING else 'reminder'} {repeat + 1}"


def _page(policy: Policy, p: Page) -> PageRow:
    return PageRow(
        p.id,
        p.person,
        p.created_at,
        step_words(policy, p.step),
        p.reason,
        p.acknowledged_at,
        p.acknowledged_via,
    )


def _escalations(
    policy: Policy, incident: Incident, rows: list[Escalation], pending: list[Timer]
) -> list[EscalationRow]:
    due = {str(t.payload.get("chain")): t.due_at for t in pending if t.kind == planned.ESCALATION_STEP}
    out = []
    for e in rows:
        chain = policy.escalation_chains.get(e.chain)
        steps = len(chain.steps) if chain is not None else 0
        role = chain.steps[e.step].role if chain is not None and e.step < steps else None
        out.append(
            EscalationRow(
                chain=e.chain,
                title=(chain.title if chain is not None else "") or e.chain,
                trigger=e.trigger,
                next_role=None if e.finished_at is not None else role,
                step=e.step + 1,
                steps=steps,
                round=e.round + 1,
                started_at=e.started_at,
                finished_at=e.finished_at,
                due_at=None if e.finished_at is not None else due.get(e.chain),
            )
        )
    return out


async def panel(session: AsyncSession, policy: Policy, incident: Incident, now: datetime) -> PagingPanel:
    """Everything the Paging card shows for the incident at `now`."""
    pending = await timers.pending(session, incident.id)
    messages = await outbox.messages(session, incident.id)
    failed = [m for m in messages if m.status == "failed"]
    open_ = is_open(incident.status)
    update_due = incident.next_update_due_at
    watching = (
        open_
        and Status(incident.status) in MITIGATED
        and incident.watch_until is not None
        and incident.watch_until > now
    )
    return PagingPanel(
        pages=[_page(policy, p) for p in await pages_of(session, incident.id)],
        escalations=_escalations(policy, incident, await escalation.running(session, incident.id), pending),
        reminders=[Reminder(REMINDERS[t.kind], t.due_at, _nth(t)) for t in pending if t.kind in REMINDERS],
        deliveries=await outbox.deliveries(session, incident.id),
        failures=[
            Failure(m.channel, m.target, m.kind, m.last_error or "no error recorded")
            for m in reversed(failed[-FAILED_SHOWN:])
        ],
        chains={name: chain.title or name for name, chain in policy.escalation_chains.items()},
        default_chain=policy.paging.unacknowledged or next(iter(policy.escalation_chains), None),
        update_overdue_since=update_due if open_ and update_due is not None and update_due <= now else None,
        missed_updates=incident.missed_updates,
        watch_until=incident.watch_until if watching else None,
        open=open_,
    )
