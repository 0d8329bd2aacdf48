"""HTML routes for incidents: the dashboard, the incident page, its forms and its live timeline."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from tocsin.alerts import triage
from tocsin.alerts.matchers import filter_text
from tocsin.auth import service as auth_service
from tocsin.auth.deps import SESSION_COOKIE
from tocsin.auth.pages import PageSession, Who, posted
from tocsin.auth.roles import Role
from tocsin.core.errors import Conflict, NotFound, TocsinError, Unauthorized
from tocsin.core.ids import incident_ref
from tocsin.incidents import hypotheses, paging_panel, present, schemas, service, timeline
from tocsin.incidents.lifecycle import Status
from tocsin.incidents.models import Incident, TimelineEvent
from tocsin.incidents.timeline import EventKind
from tocsin.oncall import escalation
from tocsin.oncall.jobs import paging_context
from tocsin.oncall.response_api import Escalate
from tocsin.runtime import Runtime, runtime
from tocsin.statuspage import console as status_page
from tocsin.statuspage.schemas import StatusUpdateForm
from tocsin.web import forms, sse
from tocsin.web.deadlines import Countdown, countdown, most_urgent
from tocsin.web.errors import PageError
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]
Ui = Annotated[Console, Depends(console)]

MAX_EVENTS = 5000  # shown on the page at once; the live stream sends any beyond
ALERTS_SHOWN = 10  # the newest alerts listed beside the timeline
STREAM_BATCH = 200
RECENT = 10
# Events that change the header (status, severity, roles, deadlines): the stream re-sends it.
SUMMARY_KINDS = frozenset(
    {EventKind.status_change, EventKind.severity_change, EventKind.role_change, EventKind.update}
)
LATEST = datetime.max.replace(tzinfo=UTC)
DECLARE_ATTEMPTS = 5
# What parse_incident_ref reads; anything else (e.g. "INC-²", which isdigit() accepts) is a 404 here.
REF = re.compile(r"(?:[Ii][Nn][Cc]-)?[0-9]{1,11}")
NUMBER = re.compile(r"[0-9]{1,9}")
CONSOLE = "console"  # how pages acknowledged from here say they were


def _checked(ref: str, who: PageSession) -> str:
    if not REF.fullmatch(ref):
        raise PageError(
            404, "No such incident", f"{ref!r} is not an incident id (expected INC-<number>)", who=who
        )
    return ref


def countdowns(row: Incident, now: datetime, *, escalation: bool = False) -> list[Countdown]:
    """The incident's SLA deadlines; a deadline still open at resolution stops there."""
    detected, stop = row.detected_at, row.resolved_at
    out = [
        countdown("response", "Response", detected, row.response_due_at, row.acknowledged_at, now, stop),
        countdown("resolution", "Resolution", detected, row.resolution_due_at, row.resolved_at, now, stop),
        countdown(
            "update", "Next update", row.last_update_at or detected, row.next_update_due_at, None, now, stop
        ),
        countdown(
            "status_page",
            "Status page",
            detected,
            row.status_page_due_at,
            row.status_page_updated_at,
            now,
            stop,
        ),
    ]
    if escalation:
        out.append(
            countdown("escalation", "Escalation", detected, row.escalation_due_at, row.resolved_at, now, stop)
        )
    return out


@dataclass(frozen=True)
class DashboardRow:
    incident: schemas.IncidentOut
    countdowns: dict[str, Countdown]


def _urgency(rt: Runtime, row: DashboardRow) -> tuple[int, datetime, int]:
    sev = rt.policy.severities.get(row.incident.severity)
    nearest = most_urgent(list(row.countdowns.values())) or LATEST
    return (sev.rank if sev else 99, nearest, row.incident.number)


async def _dashboard(
    ui: Console,
    rt: Runtime,
    who: PageSession,
    *,
    status_code: int = 200,
    error: str = "",
    form: FormData | None = None,
) -> Response:
    now, tz = rt.clock.now(), rt.policy.timezone
    async with rt.db.session() as session:
        open_rows = await service.open_incidents(session)
        recent, _ = await service.list_incidents(
            session, statuses=(Status.resolved, Status.closed), limit=RECENT
        )
        roles = await service.role_history(session, [r.id for r in [*open_rows, *recent]])
    rows = [
        DashboardRow(present.incident(r, roles[r.id], now, tz), {c.key: c for c in countdowns(r, now)})
        for r in open_rows
    ]
    rows.sort(key=lambda row: _urgency(rt, row))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.incident.severity] = counts.get(row.incident.severity, 0) + 1
    return ui.page(
        "dashboard.html",
        status_code=status_code,
        who=who,
        now=now,
        active="dashboard",
        rows=rows,
        counts=counts,
        recent=[present.incident(r, roles[r.id], now, tz) for r in recent],
        error=error,
        failed="declare" if error else "",
        posted=forms.values(form) if form is not None else {},
    )


@router.get("/")
async def dashboard(who: Who, rt: Rt, ui: Ui) -> Response:
    return await _dashboard(ui, rt, who)


@router.get("/incidents")
async def incidents() -> Response:
    return RedirectResponse("/", status_code=303)


@router.post("/incidents")
async def declare(request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    form = await posted(request, who, Role.responder)
    try:
        data = forms.parse(schemas.IncidentCreate, form)
        for attempt in range(DECLARE_ATTEMPTS):
            try:
                async with rt.db.transaction() as session:
                    incident = await service.declare(session, rt.clock, rt.policy, who.name, data)
                break
            except IntegrityError:
                # Two declarations raced for one channel name; the next try sees the winner's (as the API does).
                if attempt == DECLARE_ATTEMPTS - 1:
                    raise Conflict("could not allocate a channel name; try again", field="title") from None
    except TocsinError as exc:
        return await _dashboard(ui, rt, who, status_code=exc.status_code, error=exc.message, form=form)
    rt.bus.publish("incidents")
    return RedirectResponse(f"/incidents/{incident_ref(incident.id)}", status_code=303)


async def _summary(session: AsyncSession, rt: Runtime, incident: Incident) -> dict[str, Any]:
    """What the incident's header shows: the incident, its SLA countdowns and its roles."""
    now = rt.clock.now()
    roles = await service.role_history(session, [incident.id])
    return {
        "incident": present.incident(incident, roles[incident.id], now, rt.policy.timezone),
        "countdowns": countdowns(incident, now, escalation=True),
        "now": now,
    }


async def _incident_page(
    ui: Console,
    rt: Runtime,
    who: PageSession,
    ref: str,
    *,
    status_code: int = 200,
    error: str = "",
    failed: str = "",
    form: FormData | None = None,
) -> Response:
    async with rt.db.session() as session:
        try:
            incident = await service.get(session, _checked(ref, who))
        except NotFound as exc:
            raise PageError(404, "No such incident", exc.message, who=who) from None
        context = await _summary(session, rt, incident)
        events = await timeline.events(session, incident.id, 0, MAX_EVENTS)
        ideas = await hypotheses.listing(session, incident)
        alerts = await triage.for_incident(session, incident.id, ALERTS_SHOWN)
        alert_counts = await triage.counts_for_incident(session, incident.id)
        alert_groups = await triage.counted_by(session, "alertname", "all", incident.id, limit=8)
        people = [user.name for user in await auth_service.list_users(session)]
        status_panel = await status_page.panel(session, rt, incident)
        paging = await paging_panel.panel(session, rt.policy, incident, context["now"])
    return ui.page(
        "incident.html",
        status_code=status_code,
        who=who,
        events=events,
        last_seq=events[-1].seq if events else 0,
        hypotheses=ideas,
        alerts=alerts,
        alert_counts=alert_counts,
        alert_groups=[(value, n, _alerts_link(incident.id, value)) for value, n in alert_groups],
        alerts_link=_alerts_link(incident.id),
        people=people,
        status_page=status_panel,
        paging=paging,
        error=error,
        failed=failed if error else "",
        posted=forms.values(form) if form is not None else {},
        **context,
    )


def _alerts_link(incident_id: int, alertname: str | None = None) -> str:
    """The Alerts page showing this incident's alerts, all of them or those of one alertname."""
    wanted = {"status": "all", "incident": f"INC-{incident_id}"}
    if alertname is not None:
        wanted["f"] = filter_text(
            [{"name": "alertname", "value": alertname, "is_regex": False, "is_equal": True}]
        )
    return "/alerts?" + urlencode(wanted)


@router.get("/incidents/{ref}")
async def show(ref: str, who: Who, rt: Rt, ui: Ui) -> Response:
    return await _incident_page(ui, rt, who, ref)


@router.get("/incidents/{ref}/events")
async def events(
    ref: str,
    request: Request,
    who: Who,
    rt: Rt,
    ui: Ui,
    after: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Response:
    """Server-sent events: each timeline event after `after` (or Last-Event-ID) as rendered HTML."""
    async with rt.db.session() as session:
        try:
            incident_id = (await service.get(session, _checked(ref, who))).id
        except NotFound as exc:
            raise PageError(404, "No such incident", exc.message, who=who) from None

    cookie = request.cookies.get(SESSION_COOKIE, "")

    async def poll(cursor: int) -> sse.Batch:
        async with rt.db.session() as session:
            try:  # a stream outlives its page's request: stop once the session is signed out or expires
                await auth_service.session_principal(session, rt.clock, cookie)
            except Unauthorized:
                return sse.Batch([], cursor, end=True)
            rows = await timeline.events(session, incident_id, cursor, STREAM_BATCH)
            if not rows:
                return sse.Batch([], cursor)
            messages = [
                sse.Message(ui.fragment("partials/event.html", event=r), "timeline", r.seq) for r in rows
            ]
            if any(r.kind in SUMMARY_KINDS for r in rows):
                context = await _summary(session, rt, await service.get(session, incident_id))
                messages.append(sse.Message(ui.fragment("partials/summary.html", **context), "summary"))
        return sse.Batch(messages, rows[-1].seq, more=len(rows) == STREAM_BATCH)

    body = sse.stream(request, rt.bus, f"incident:{incident_id}", poll, sse.last_event_id(request, after))
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@dataclass(frozen=True)
class Change:
    """What a form action works with: the write session, the locked incident and who acts."""

    session: AsyncSession
    rt: Runtime
    incident: Incident
    actor: str

    def record(self, kind: EventKind, data: dict[str, Any]) -> Awaitable[TimelineEvent]:
        return service.record(self.session, self.rt.clock, self.incident, kind, self.actor, data)


Run = Callable[[Change, Any], Awaitable[object]]


@dataclass(frozen=True)
class Action:
    role: Role
    form: type[BaseModel] | None
    run: Run


def _status(new: Status) -> Run:
    def run(c: Change, body: Any) -> Awaitable[object]:
        note = getattr(body, "summary", "") or getattr(body, "note", "")
        return service.change_status(
            c.session, c.rt.clock, c.rt.policy, c.incident, new, c.actor, note, via=CONSOLE
        )

    return run


async def _escalate_now(c: Change, body: Escalate) -> None:
    """Escalate now, as the API's POST .../escalate does: the chain's next step at once, or start it."""
    ctx = await paging_context(c.rt, c.session)
    await escalation.escalate_now(
        c.session, ctx, c.rt.clock.now(), c.incident, c.actor, body.chain, body.reason
    )


# The same role per action as the JSON API: responders act, commanders also assign roles, close and reopen.
ACTIONS: dict[str, Action] = {
    "acknowledge": Action(Role.responder, schemas.Acknowledge, _status(Status.acknowledged)),
    "status": Action(
        Role.responder,
        schemas.StatusChange,
        lambda c, b: service.change_status(
            c.session, c.rt.clock, c.rt.policy, c.incident, b.status, c.actor, b.note, via=CONSOLE
        ),
    ),
    "resolve": Action(
        Role.responder,
        schemas.Resolve,
        lambda c, b: service.change_status(
            c.session,
            c.rt.clock,
            c.rt.policy,
            c.incident,
            Status.resolved,
            c.actor,
            b.summary,
            override=b.override_reason,
            via=CONSOLE,
        ),
    ),
    "close": Action(Role.commander, None, _status(Status.closed)),
    "reopen": Action(
        Role.commander,
        schemas.Reopen,
        lambda c, b: service.reopen(c.session, c.rt.clock, c.rt.policy, c.incident, c.actor, b.reason),
    ),
    "severity": Action(
        Role.responder,
        schemas.SeverityChange,
        lambda c, b: service.change_severity(
            c.session, c.rt.clock, c.rt.policy, c.incident, b.severity, c.actor, b.reason
        ),
    ),
    "roles": Action(
        Role.commander,
        schemas.RoleChange,
        lambda c, b: service.change_role(c.session, c.rt.clock, c.incident, b, c.actor),
    ),
    "notes": Action(Role.responder, schemas.Note, lambda c, b: c.record(EventKind.note, {"text": b.text})),
    "actions": Action(
        Role.responder, schemas.Note, lambda c, b: c.record(EventKind.action, {"text": b.text})
    ),
    "commands": Action(
        Role.responder, schemas.CommandRun, lambda c, b: c.record(EventKind.command, b.model_dump())
    ),
    "assignments": Action(
        Role.responder, schemas.Assignment, lambda c, b: c.record(EventKind.assignment, b.model_dump())
    ),
    "updates": Action(
        Role.responder,
        schemas.Note,
        lambda c, b: service.post_update(c.session, c.rt.clock, c.rt.policy, c.incident, c.actor, b.text),
    ),
    "status-updates": Action(
        Role.responder,
        StatusUpdateForm,
        lambda c, b: status_page.post_from_form(c.session, c.rt, c.incident, c.actor, b),
    ),
    "escalate": Action(Role.responder, Escalate, lambda c, b: _escalate_now(c, b)),
    "hypotheses": Action(
        Role.responder,
        schemas.HypothesisCreate,
        lambda c, b: hypotheses.propose(c.session, c.rt.clock, c.incident, c.actor, b.text),
    ),
}


async def _perform(
    request: Request, who: PageSession, rt: Runtime, ui: Console, ref: str, name: str, action: Action
) -> Response:
    """Check the form, run the action in a write transaction, wake watchers, go back to the incident."""
    form = await posted(request, who, action.role)
    _checked(ref, who)
    try:
        body = forms.parse(action.form, form) if action.form is not None else None
        async with rt.db.transaction() as session:
            incident = await service.get(session, ref, for_update=True)
            await action.run(Change(session, rt, incident, who.name), body)
    except NotFound as exc:
        if exc.field == "id":
            raise PageError(404, "No such incident", exc.message, who=who) from None
        return await _incident_page(
            ui, rt, who, ref, status_code=404, error=exc.message, failed=name, form=form
        )
    except TocsinError as exc:
        return await _incident_page(
            ui, rt, who, ref, status_code=exc.status_code, error=exc.message, failed=name, form=form
        )
    rt.bus.publish(f"incident:{incident.id}", "incidents")
    return RedirectResponse(
        f"/incidents/{incident_ref(incident.id)}#event-{incident.last_seq}", status_code=303
    )


@router.post("/incidents/{ref}/hypotheses/{hypothesis}")
async def settle(ref: str, hypothesis: str, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    """Record a proposed hypothesis as confirmed or refuted."""
    if not NUMBER.fullmatch(hypothesis):
        raise PageError(404, "No such hypothesis", f"{hypothesis!r} is not a hypothesis number", who=who)
    number = int(hypothesis)
    action = Action(
        Role.responder,
        schemas.HypothesisResult,
        lambda c, b: hypotheses.settle(c.session, c.rt.clock, c.incident, number, b, c.actor),
    )
    return await _perform(request, who, rt, ui, ref, f"settle-{number}", action)


@router.post("/incidents/{ref}/{name}")
async def act(ref: str, name: str, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    """Every other incident form: acknowledge, status, resolve, close, reopen, severity, roles, notes, ..."""
    action = ACTIONS.get(name)
    if action is None:
        raise PageError(404, "Not found", f"there is no incident action {name!r}", who=who)
    return await _perform(request, who, rt, ui, ref, name, action)
