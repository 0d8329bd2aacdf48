"""The console's Alerts and Silences pages: every alert whatever its incident, filtered by label matchers
and counted by a label (`alerts.triage`), resolved by hand; what is muted now and how much, a silence
made from an alert's labels or from a filter, and ending one.

In a storm the person on call is in the console, not at a terminal: each alert links to the Silences
page with its labels filled in (`?m=alertname=DiskFull&m=instance=db-1`), as Alertmanager's UI
silences from an alert, and so does a filtered Alerts page. The JSON API and the CLI do the same
(`GET /api/v1/alerts?filter=`, `/api/v1/alerts/groups`, `POST /api/v1/alerts/resolve`,
`POST /api/v1/silences`, `tocsin alert`, `tocsin silence`).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from tocsin.alerts import inhibition, integrations, silences, triage
from tocsin.alerts.matchers import filter_text, matcher_text, parse_filter, parse_matcher
from tocsin.auth.pages import Who, posted
from tocsin.auth.roles import Role
from tocsin.core.durations import format_duration, parse_duration
from tocsin.core.errors import InvalidInput, NotFound, TocsinError
from tocsin.incidents import service as incidents
from tocsin.runtime import Runtime, runtime
from tocsin.web.errors import PageError, row_number
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]
Ui = Annotated[Console, Depends(console)]
DURATIONS = ("30m", "1h", "2h", "4h", "8h", "1d", "3d", "7d")
LONGEST = timedelta(days=90)


ALERTS_SHOWN = 200
_BACK = re.compile(r"/(alerts|incidents/INC-\d+)(\?[^#\s]*)?")  # where the resolve form may send one back
GROUP_BY = ("alertname", "service", "instance", "job", "severity")  # the labels the page counts by


@router.get("/alerts")
async def alerts_page(
    who: Who,
    rt: Rt,
    ui: Ui,
    status: str = "open",
    f: Annotated[str, Query(max_length=4000)] = "",
    incident: Annotated[str, Query(max_length=40)] = "",
    by: str = "alertname",
    resolved: str = "",
    before: str = "",
) -> Response:
    """The newest alerts of every integration (open ones unless asked; one incident's if asked), those
    matching the filter `f` (`alertname="DiskFull", instance=~"db-.*"`), and what they are made of: the
    commonest values of the label `by`, each a link that filters by it."""
    status = status if status in triage.STATUSES else "open"
    by = by if by in GROUP_BY else "alertname"
    error = ""
    try:
        wanted = parse_filter(f)
    except ValueError as exc:
        wanted, error = [], f"The filter is not understood: {exc}"
    found, groups, incident_id = triage.Found([], cut=False), [], None
    async with rt.db.session() as session:
        if incident:
            try:
                incident_id = (await incidents.get(session, incident)).id
            except NotFound as exc:
                error = exc.message
        if not error:
            older_than = triage.alert_id(before)
            found = await triage.filtered(
                session, status, wanted, ALERTS_SHOWN, incident_id, before=older_than
            )
            if status not in ("resolved", "all") or incident_id is not None:  # never a scan of all history
                groups = await triage.counted_by(session, by, status, incident_id, matchers=wanted)
        counts = await triage.open_counts(session)
        names = {i.id: i.name for i in await integrations.listing(session)}
    chosen = {"status": status, "f": filter_text(wanted) if wanted else "", "incident": incident, "by": by}

    def link(**changes: str) -> str:
        """This page's URL with some parameters changed (empty ones left out)."""
        merged = {**chosen, **changes}
        return "/alerts?" + urlencode(
            {k: v for k, v in merged.items() if v and (k, v) != ("by", "alertname")}
        )

    def narrowed(value: str) -> str:
        """This page filtered further to alerts whose label `by` is `value`."""
        return link(
            f=filter_text([*wanted, {"name": by, "value": value, "is_regex": False, "is_equal": True}])
        )

    return ui.page(
        "alerts.html",
        status_code=400 if error else 200,
        who=who,
        active="alerts",
        alerts=found.alerts,
        cut=found.cut,
        counts=counts,
        names=names,
        status=status,
        statuses=triage.STATUSES,
        shown=ALERTS_SHOWN,
        filter=f if error else chosen["f"],
        wanted=wanted,
        silence_matchers=[matcher_text(m) for m in wanted],
        incident=incident if incident_id is not None else "",
        groups=[(value, n, narrowed(value)) for value, n in groups],
        by=by,
        group_by=GROUP_BY,
        error=error,
        link=link,
        scan=triage.SCAN,
        resolved=int(resolved) if resolved.isdigit() and len(resolved) < 6 else None,
        here=link(before=before),
        paged=bool(before),
        older=link(before=str(found.next_before)) if found.next_before is not None else "",
    )


@router.post("/alerts/resolve")
async def resolve_alerts(request: Request, who: Who, rt: Rt) -> Response:
    """Resolve by hand the alerts of the form (`alert`, one id each: those shown), then back to the page
    they were shown on (`back`, an Alerts or incident page), which says how many were resolved."""
    form = await posted(request, who, Role.responder)
    ids = [n for v in form.getlist("alert") if isinstance(v, str) and (n := triage.alert_id(v)) is not None][
        :1000
    ]
    back = form.get("back")
    if not isinstance(back, str) or not _BACK.fullmatch(back):
        back = "/alerts"
    resolved = await triage.resolve(rt.db, rt.clock, rt.policy, ids, who.name) if ids else []
    parts = urlsplit(back)
    if parts.path != "/alerts":  # an incident page: its timeline says what was resolved, and by whom
        return RedirectResponse(f"{parts.path}#alerts", status_code=303)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "resolved"]
    query.append(("resolved", str(len(resolved))))
    return RedirectResponse(f"/alerts?{urlencode(query)}", status_code=303)


async def _page(
    rt: Runtime, ui: Ui, who: Who, *, status_code: int = 200, error: str = "", form: dict[str, str]
) -> Response:
    now = rt.clock.now()
    async with rt.db.session() as session:
        listed = await silences.listing(session, rt.clock, include_expired=False)
        muting = await triage.muting(session)
    rows: list[dict[str, Any]] = [
        {
            "silence": s,
            "matchers": [matcher_text(m) for m in s.matchers],
            "muting": muting.get(f"{s.kind}:{s.id}", 0),
            "alerts": "/alerts?" + urlencode({"f": filter_text(s.matchers)}),
            "pending": s.starts_at > now,
            "left": format_duration(timedelta(minutes=math.ceil((s.ends_at - now).total_seconds() / 60))),
        }
        for s in listed
    ]
    return ui.page(
        "silences.html",
        status_code=status_code,
        who=who,
        active="silences",
        now=now,
        rows=rows,
        durations=DURATIONS,
        inhibit_rules=rt.policy.alerting.inhibit_rules,
        inhibited=sum(n for by, n in muting.items() if by.startswith(inhibition.PREFIX)),
        error=error,
        form=form,
    )


@router.get("/silences")
async def silences_page(who: Who, rt: Rt, ui: Ui, m: Annotated[list[str], Query()] = []) -> Response:  # noqa: B006
    """`m`: matchers to fill the form with, one per value (the incident page's "Silence alerts like this")."""
    return await _page(rt, ui, who, form={"matchers": "\n".join(text[:1100] for text in m[:50])})


def _matchers(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidInput("Give at least one matcher, such as alertname=DiskFull.", field="matchers")
    if len(lines) > 50:
        raise InvalidInput("At most 50 matchers.", field="matchers")
    try:
        found = [parse_matcher(line) for line in lines]
    except ValueError as exc:
        raise InvalidInput(str(exc), field="matchers") from None
    silences.check_matchers(found)
    return found


@router.post("/silences")
async def add_silence(request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    form = await posted(request, who, Role.responder)
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        matchers = _matchers(fields.get("matchers", ""))
        try:
            length = parse_duration(fields.get("duration", "").strip())
        except ValueError:
            raise InvalidInput("Duration is not a duration such as 2h or 1d.", field="duration") from None
        if not timedelta(minutes=1) <= length <= LONGEST:
            raise InvalidInput("Duration must be between 1m and 90d.", field="duration")
        comment = fields.get("comment", "").strip()
        if not comment:
            raise InvalidInput("Say why, for whoever is on call next.", field="comment")
        async with rt.db.transaction() as session:
            await silences.create(
                session,
                rt.clock,
                matchers=matchers,
                starts_at=None,
                ends_at=rt.clock.now() + length,
                comment=comment[:2000],
                actor=who.name,
                kind="maintenance" if fields.get("maintenance") else "silence",
            )
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message, form=fields)
    return RedirectResponse("/silences", status_code=303)


@router.post("/silences/{silence_id}/expire")
async def end_silence(silence_id: str, request: Request, who: Who, rt: Rt) -> Response:
    await posted(request, who, Role.responder)
    number = row_number(silence_id, "silence", who)
    try:
        async with rt.db.transaction() as session:
            await silences.expire(session, rt.clock, number)
    except NotFound as exc:
        raise PageError(404, "No such silence", exc.message, who=who) from None
    return RedirectResponse("/silences", status_code=303)
