"""HTML routes for user reports: the public report form and the console's triage page.

The public form has no session, so no CSRF token; instead each form carries a signed timestamp (a
form forged elsewhere or replayed days later is refused, one sent within seconds of loading is a
bot) and a honeypot field that people never see and bots fill in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from tocsin.auth.pages import PageSession, Who, allowed, posted
from tocsin.auth.roles import Role
from tocsin.core.durations import format_duration
from tocsin.core.errors import NotFound, TocsinError
from tocsin.incidents import service as incidents
from tocsin.reports import jobs, schemas, service
from tocsin.reports.api import client_address
from tocsin.reports.service import RateLimited
from tocsin.runtime import Runtime, runtime
from tocsin.web import forms
from tocsin.web.errors import PageError, row_number
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]
Ui = Annotated[Console, Depends(console)]

TOKEN_FIELD = "form_token"
HONEYPOT_FIELD = "website"
MIN_FILL = timedelta(seconds=2)  # nobody reads the form and describes a problem faster
MAX_FORM_AGE = timedelta(hours=12)
LISTED = 200
TABS = ("new", "linked", "dismissed")


def _form_key(request: Request, rt: Runtime) -> bytes:
    """The key that signs form tokens: from TOCSIN_SECRET_KEY, else random per process."""
    if rt.settings.secret_key:
        return hashlib.sha256(b"tocsin report form\0" + rt.settings.secret_key.encode()).digest()
    state = request.app.state
    if not hasattr(state, "report_form_key"):
        state.report_form_key = secrets.token_bytes(32)
    key: bytes = state.report_form_key
    return key


def _sign(key: bytes, stamp: str) -> str:
    return hmac.new(key, stamp.encode(), hashlib.sha256).hexdigest()[:32]


def issue_token(key: bytes, now: datetime) -> str:
    stamp = str(int(now.timestamp()))
    return f"{stamp}.{_sign(key, stamp)}"


def token_age(key: bytes, token: object, now: datetime) -> timedelta | None:
    """How long ago the form was issued; None when the token is missing or not ours."""
    if not isinstance(token, str) or token.count(".") != 1:
        return None
    stamp, signature = token.split(".")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return None
    if not hmac.compare_digest(signature, _sign(key, stamp)):
        return None
    return now - datetime.fromtimestamp(int(stamp), now.tzinfo)


def _report_form(
    request: Request,
    rt: Runtime,
    ui: Ui,
    *,
    status_code: int = 200,
    error: str = "",
    field: str | None = None,
    form: FormData | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = ui.page(
        "reports/form.html",
        status_code=status_code,
        who=None,
        token=issue_token(_form_key(request, rt), rt.clock.now()),
        error=error,
        error_field=field or "",
        posted=forms.values(form) if form is not None else {},
        max_description=schemas.MAX_DESCRIPTION,
    )
    response.headers.update(headers or {})
    return response


@router.get("/report")
async def report_form(request: Request, rt: Rt, ui: Ui) -> Response:
    return _report_form(request, rt, ui)


@router.post("/report")
async def send_report(request: Request, rt: Rt, ui: Ui) -> Response:
    form = await request.form()
    if form.get(HONEYPOT_FIELD):
        # A bot: thank it like anyone else, so it learns nothing, and keep nothing.
        return RedirectResponse("/report/thanks", status_code=303)
    age = token_age(_form_key(request, rt), form.get(TOKEN_FIELD), rt.clock.now())
    if age is None or age > MAX_FORM_AGE:
        message = "This form expired. Please check your report and send it again."
        return _report_form(request, rt, ui, status_code=422, error=message, field=TOKEN_FIELD, form=form)
    if age < MIN_FILL:
        message = "That was very quick. Please check your report, then send it again."
        return _report_form(request, rt, ui, status_code=422, error=message, field=TOKEN_FIELD, form=form)
    client = client_address(request)
    try:
        data = forms.parse(schemas.ReportCreate, form)
        await jobs.take(rt, data, channel="web", client=client, reporter=service.reporter_by_address(client))
    except RateLimited as exc:
        minutes = max(1, -(-exc.retry_after // 60))
        message = (
            f"You have sent several reports in a short time. Please wait about {minutes} "
            f"minute{'s' if minutes > 1 else ''}, then try again. We already have your earlier reports."
        )
        return _report_form(
            request,
            rt,
            ui,
            status_code=429,
            error=message,
            form=form,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except TocsinError as exc:
        return _report_form(
            request, rt, ui, status_code=exc.status_code, error=exc.message, field=exc.field, form=form
        )
    return RedirectResponse("/report/thanks", status_code=303)


@router.get("/report/thanks")
async def thanks(ui: Ui) -> Response:
    return ui.page("reports/thanks.html", who=None)


async def _triage_page(
    ui: Console,
    rt: Runtime,
    who: PageSession,
    tab: str,
    *,
    status_code: int = 200,
    error: str = "",
    failed: int | None = None,
) -> Response:
    now = rt.clock.now()
    window = rt.policy.alerting.reports_window
    async with rt.db.session() as session:
        rows, total = await service.listing(session, tab, LISTED)
        counts = await service.counts(session)
        recent = await service.recent_voices(session, now - window)
        open_rows = await incidents.open_incidents(session)
        suggested = await service.suggested_incidents(
            session, {r.component for r in rows if r.component}, open_rows
        )
    rank = {key: sev.rank for key, sev in rt.policy.severities.items()}
    open_rows.sort(key=lambda i: (rank.get(i.severity, 99), -i.id))
    return ui.page(
        "reports/triage.html",
        status_code=status_code,
        who=who,
        now=now,
        active="reports",
        tab=tab,
        tabs=TABS,
        reports=rows,
        total=total,
        counts=counts,
        recent=recent,
        open_incidents=open_rows,
        suggested=suggested,
        titles={c.name: c.title for s in rt.policy.services for c in s.components},
        threshold=rt.policy.alerting.reports_threshold,
        window=format_duration(window),
        support_address=rt.settings.support_address if rt.settings.smtp_listen else "",
        error=error,
        failed=failed,
    )


@router.get("/reports")
async def triage_page(
    who: Who, rt: Rt, ui: Ui, status: Annotated[str, Query(max_length=20)] = "new"
) -> Response:
    allowed(who, Role.responder)
    return await _triage_page(ui, rt, who, status if status in TABS else "new")


@router.post("/reports/{report_id}/triage")
async def triage(report_id: str, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    form = await posted(request, who, Role.responder)
    tab = str(form.get("tab") or "new")
    tab = tab if tab in TABS else "new"
    number = row_number(report_id, "report", who)
    action = form.get("action")
    incident = form.get("incident") or None
    try:
        async with rt.db.transaction() as session:
            _, target = await service.triage(
                session,
                rt.clock,
                number,
                action if isinstance(action, str) else "",
                incident if isinstance(incident, str) else None,
                who.name,
            )
    except NotFound as exc:
        raise PageError(404, "No such report", exc.message, who=who) from None
    except TocsinError as exc:
        return await _triage_page(
            ui, rt, who, tab, status_code=exc.status_code, error=exc.message, failed=int(report_id)
        )
    if target is not None:
        rt.bus.publish(f"incident:{target.id}", "incidents")
    return RedirectResponse(f"/reports?status={tab}", status_code=303)
