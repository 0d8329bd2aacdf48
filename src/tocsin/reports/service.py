"""The only code that writes user reports: intake with rate limits, bursts per component, triage."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.clock import Clock
from tocsin.core.durations import format_duration
from tocsin.core.errors import Conflict, InvalidInput, NotFound, TocsinError
from tocsin.core.ids import incident_ref
from tocsin.db.engine import advisory_lock
from tocsin.incidents import service as incidents
from tocsin.incidents.lifecycle import is_open
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind
from tocsin.policy.models import Policy
from tocsin.reports.models import Report, ReportBurst
from tocsin.reports.schemas import Channel, ReportCreate

# Per reporter (client address, or sender for email): enough for a person, too few to flood triage.
RATE_LIMIT = 5
RATE_WINDOW = timedelta(minutes=10)
NOTE_EXCERPT = 1_000
# What incidents.get reads, within 32-bit ids (a longer number would be a database error, not a 422).
INCIDENT_REF = re.compile(r"(?:[Ii][Nn][Cc]-)?[0-9]{1,9}")


class RateLimited(TocsinError):
    """Too many reports from one reporter; `retry_after` seconds until the next is accepted."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(
            f"at most {RATE_LIMIT} reports in {format_duration(RATE_WINDOW)}; try again in about "
            f"{minutes} minute{'s' if minutes > 1 else ''}",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Received:
    report: Report
    alert_due: str | None  # the component whose burst alert this report made due, if any


def reporter_by_address(client: str) -> str:
    return f"ip:{client}"


def reporter_by_sender(address: str) -> str:
    return f"mail:{address.lower()}"


def component_title(policy: Policy, name: str | None) -> str:
    """The component's title as the policy writes it (`Authentication`), or its name."""
    for service in policy.services:
        for component in service.components:
            if component.name == name:
                return component.title
    return name or "no component"


def check_component(policy: Policy, name: str | None) -> None:
    if name is not None and name not in policy.component_names:
        known = ", ".join(sorted(policy.component_names))
        raise InvalidInput(f"unknown component {name!r}; known: {known}", field="component")


async def _rate_limit_wait(session: AsyncSession, reporter: str, now: datetime) -> int:
    """0 when the reporter may send another report now, else whole seconds to wait."""
    recent = list(
        await session.scalars(
            select(Report.created_at)
            .where(Report.reporter == reporter, Report.created_at > now - RATE_WINDOW)
            .order_by(Report.created_at.desc())
            .limit(RATE_LIMIT)
        )
    )
    if len(recent) < RATE_LIMIT:
        return 0
    return max(1, math.ceil((recent[-1] + RATE_WINDOW - now).total_seconds()))


async def receive(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    data: ReportCreate,
    *,
    channel: Channel,
    client: str,
    reporter: str,
) -> Received:
    """Store a report (RateLimited when its reporter sent too many) and advance its component's burst."""
    check_component(policy, data.component)
    now = clock.now()
    await advisory_lock(session, f"report-reporter:{reporter}")
    wait = await _rate_limit_wait(session, reporter, now)
    if wait:
        raise RateLimited(wait)
    report = Report(
        component=data.component,
        description=data.description,
        email=data.email,
        channel=channel,
        client=client[:64],
        reporter=reporter[:300],
        created_at=now,
        status="new",
    )
    session.add(report)
    await session.flush()
    due = await _advance_burst(session, policy, data.component, now) if data.component else None
    return Received(report, due)


async def voices(session: AsyncSession, component: str, since: datetime) -> int:
    """Distinct reporters about the component since `since`; dismissed reports do not count."""
    count = await session.scalar(
        select(func.count(distinct(Report.reporter))).where(
            Report.component == component, Report.created_at > since, Report.status != "dismissed"
        )
    )
    return int(count or 0)


async def _advance_burst(session: AsyncSession, policy: Policy, component: str, now: datetime) -> str | None:
    """Count the report into its component's burst; the component when this report makes its alert due."""
    window = policy.alerting.reports_window
    await advisory_lock(session, f"report-burst:{component}")
    burst = await session.get(ReportBurst, component, with_for_update=True)
    if burst is None:
        burst = ReportBurst(
            component=component, started_at=now, last_report_at=now, alert="none", reporters=0
        )
        session.add(burst)
    elif burst.last_report_at <= now - window:
        # Quiet for a whole window: a new burst, which may raise a new alert. A pending alert of the
        # old one stays pending, for the retry loop to raise.
        burst.started_at = now
        if burst.alert != "pending":
            burst.alert, burst.alert_due_at, burst.reporters = "none", None, 0
    burst.last_report_at = now
    if burst.alert != "none":
        return None  # this burst has raised (or is raising) its one alert
    count = await voices(session, component, now - window)
    if count < policy.alerting.reports_threshold:
        return None
    burst.alert, burst.alert_due_at, burst.reporters = "pending", now, count
    return component


def burst_summary(policy: Policy, burst: ReportBurst) -> str:
    """`3 user reports about Authentication in 15m`."""
    window = format_duration(policy.alerting.reports_window)
    return f"{burst.reporters} user reports about {component_title(policy, burst.component)} in {window}"


async def pending_burst(session: AsyncSession, component: str) -> ReportBurst | None:
    """The component's burst if its alert is due and not yet raised (locked until commit)."""
    await advisory_lock(session, f"report-burst:{component}")
    burst = await session.get(ReportBurst, component, with_for_update=True)
    return burst if burst is not None and burst.alert == "pending" else None


async def previous_incident_open(session: AsyncSession, burst: ReportBurst) -> bool | None:
    """Whether the incident the component's last alert went to is still open; None if there was none."""
    if burst.incident_id is None:
        return None
    status = await session.scalar(select(Incident.status).where(Incident.id == burst.incident_id))
    return None if status is None else is_open(status)


async def alert_raised(
    session: AsyncSession, clock: Clock, policy: Policy, component: str, incident_id: int | None, joined: bool
) -> None:
    """Record that the alert pipeline has the burst's alert; note it on an incident it joined silently."""
    burst = await session.get(ReportBurst, component, with_for_update=True)
    if burst is None:
        return
    burst.alert = "raised"
    if incident_id is not None:
        burst.incident_id = incident_id
        if joined:  # a repeat of an open alert writes nothing to the timeline: say what happened
            incident = await incidents.get(session, incident_id, for_update=True)
            text = f"{burst_summary(policy, burst)}: a new burst of reports joined this incident"
            await incidents.record(session, clock, incident, EventKind.note, "tocsin-reports", {"text": text})


async def overdue_alerts(session: AsyncSession, before: datetime, limit: int = 100) -> list[str]:
    """Components whose burst alert was due before `before` and is still not raised."""
    rows = await session.scalars(
        select(ReportBurst.component)
        .where(ReportBurst.alert == "pending", ReportBurst.alert_due_at < before)
        .order_by(ReportBurst.alert_due_at)
        .limit(limit)
    )
    return list(rows)


async def get(session: AsyncSession, report_id: int, *, for_update: bool = False) -> Report:
    query = select(Report).where(Report.id == report_id)
    if for_update:
        query = query.with_for_update()
    report = await session.scalar(query)
    if report is None:
        raise NotFound(f"no report #{report_id}", field="id")
    return report


async def listing(
    session: AsyncSession, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Report], int]:
    """Reports newest first, optionally of one triage status, with the total."""
    query = select(Report)
    if status:
        query = query.where(Report.status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Report.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total)


async def counts(session: AsyncSession) -> dict[str, int]:
    """Reports by triage status."""
    rows = await session.execute(select(Report.status, func.count()).group_by(Report.status))
    return {status: int(n) for status, n in rows}


async def recent_voices(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Distinct reporters per component since `since`, most first."""
    rows = await session.execute(
        select(Report.component, func.count(distinct(Report.reporter)))
        .where(Report.component.is_not(None), Report.created_at > since, Report.status != "dismissed")
        .group_by(Report.component)
    )
    found = {str(component): int(n) for component, n in rows}
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))


async def suggested_incidents(
    session: AsyncSession, components: set[str], open_incidents: list[Incident]
) -> dict[str, int]:
    """Per component, the open incident a report about it most likely belongs to.

    The incident its burst alert went to if still open, else the newest open incident naming it.
    """
    open_ids = {i.id for i in open_incidents}
    out: dict[str, int] = {}
    if components:
        bursts = await session.scalars(select(ReportBurst).where(ReportBurst.component.in_(components)))
        out = {b.component: b.incident_id for b in bursts if b.incident_id in open_ids and b.incident_id}
    for incident in sorted(open_incidents, key=lambda i: i.id, reverse=True):
        for component in incident.components:
            if component in components:
                out.setdefault(component, incident.id)
    return out


async def triage(
    session: AsyncSession,
    clock: Clock,
    report_id: int,
    action: str,
    incident: str | int | None,
    actor: str,
) -> tuple[Report, Incident | None]:
    """Link a report to an open incident (noting it on the timeline) or dismiss it."""
    report = await get(session, report_id, for_update=True)
    target: Incident | None = None
    if action == "link":
        if incident is None:
            raise InvalidInput("a link needs the incident to link the report to", field="incident")
        if isinstance(incident, str) and not INCIDENT_REF.fullmatch(incident):
            raise InvalidInput(
                f"{incident!r} is not an incident id (expected INC-<number>)", field="incident"
            )
        if report.status == "linked" and report.incident_id is not None:
            raise Conflict(
                f"report #{report.id} is already linked to {incident_ref(report.incident_id)}",
                field="action",
                current=report.status,
            )
        try:
            target = await incidents.get(session, incident, for_update=True)
        except NotFound as exc:
            raise InvalidInput(exc.message, field="incident") from None
        if not is_open(target.status):
            raise Conflict(
                f"{incident_ref(target.id)} is {target.status}; link reports to an open incident",
                field="incident",
            )
        excerpt = " ".join(report.description.split())
        if len(excerpt) > NOTE_EXCERPT:
            excerpt = excerpt[: NOTE_EXCERPT - 1] + "…"
        await incidents.record(
            session,
            clock,
            target,
            EventKind.note,
            actor,
            {"text": f"user report #{report.id} linked: {excerpt}", "report": report.id},
        )
        report.status, report.incident_id = "linked", target.id
    elif action == "dismiss":
        if incident is not None:
            raise InvalidInput("only a link takes an incident", field="incident")
        if report.status != "new":
            raise Conflict(
                f"report #{report.id} is already {report.status}", field="action", current=report.status
            )
        report.status = "dismissed"
    else:
        raise InvalidInput("action must be link or dismiss", field="action")
    report.triaged_by, report.triaged_at = actor, clock.now()
    return report, target
