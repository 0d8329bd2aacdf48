"""The console's status-page screen: maintenance mode on and off, scheduled windows, subscribers count.

Posting an incident's status update is an incident form (incidents/pages.py, action `status-updates`);
its panel on the incident page is `panel` below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from tocsin.auth.pages import PageSession, Who, posted
from tocsin.auth.roles import Role
from tocsin.core.errors import InvalidInput, TocsinError
from tocsin.incidents.models import Incident
from tocsin.notify import service as outbox
from tocsin.runtime import Runtime, runtime
from tocsin.statuspage import maintenance, schemas, service, subscribers
from tocsin.statuspage.links import links_in
from tocsin.statuspage.vocab import ComponentStatus
from tocsin.web import forms
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)
Rt = Annotated[Runtime, Depends(runtime)]
Ui = Annotated[Console, Depends(console)]


async def panel(session: AsyncSession, rt: Runtime, incident: Incident) -> dict[str, Any]:
    """The incident page's status-page panel: the draft to edit, past updates, delivery counts."""
    updates = await service.updates_of(session, incident.id)
    sent = [m for m in await outbox.messages(session, incident.id) if m.kind == "status_update"]
    counts = {status: sum(1 for m in sent if m.status == status) for status in outbox.STATUSES}
    postable = incident.customer_facing and incident.status != "closed"
    draft = await service.draft(session, rt.clock, rt.policy, incident) if postable else None
    return {
        "draft": draft,
        "updates": list(reversed(updates)),
        "deliveries": counts,
        "postable": postable,
        "component_titles": service.component_titles(rt.policy),
    }


def update_from_form(body: schemas.StatusUpdateForm) -> schemas.StatusUpdateCreate:
    """The form's `name=status` pairs as the API's mapping."""
    components = {}
    for pair in body.components:
        name, _, status = pair.partition("=")
        if status == "unchanged":
            continue
        try:
            components[name] = ComponentStatus(status)
        except ValueError:
            raise InvalidInput(f"{status!r} is not a component status", field="components") from None
    return schemas.StatusUpdateCreate(status=body.status, body=body.body, components=components)


async def _page(
    ui: Console,
    rt: Runtime,
    who: PageSession,
    *,
    status_code: int = 200,
    error: str = "",
    form: FormData | None = None,
) -> Response:
    async with rt.db.session() as session:
        rows = await maintenance.listing(session, limit=50)
        people = await subscribers.listing(session)
        components = await service.current(session)
    return ui.page(
        "statuspage/console.html",
        status_code=status_code,
        who=who,
        now=rt.clock.now(),
        active="status",
        maintenances=rows,
        subscriber_counts={
            state: sum(1 for p in people if p.state == state)
            for state in ("pending", "confirmed", "unsubscribed")
        },
        statuses={name: row.status for name, row in components.items()},
        error=error,
        failed="maintenance" if error else "",
        posted=forms.values(form) if form is not None else {},
    )


@router.get("/maintenance")
async def show(who: Who, rt: Rt, ui: Ui) -> Response:
    return await _page(ui, rt, who)


def _until(value: object, field: str) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{field.replace('_', ' ').capitalize()} is not a date and time.", field=field
        ) from None
    return at if at.tzinfo else at.astimezone()


async def _act(request: Request, who: PageSession, rt: Runtime, ui: Console, run: Any) -> Response:
    form = await posted(request, who, Role.responder)
    try:
        async with rt.db.transaction() as session:
            signed = await links_in(session, rt)
            await run(session, signed, form)
    except TocsinError as exc:
        return await _page(ui, rt, who, status_code=exc.status_code, error=exc.message, form=form)
    request.app.state.status_cache.invalidate()
    rt.bus.publish("outbox")
    return RedirectResponse("/maintenance", status_code=303)


def _components(form: FormData) -> list[str]:
    return [c for c in form.getlist("components") if isinstance(c, str) and c]


@router.post("/maintenance/mode")
async def mode(request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    """Maintenance mode on or off for the ticked components (none ticked: all)."""

    async def run(session: AsyncSession, signed: Any, form: FormData) -> None:
        if form.get("on") == "true":
            await maintenance.mode_on(
                session,
                rt.clock,
                rt.policy,
                signed,
                who.name,
                components=_components(form),
                title=str(form.get("title") or "")[:200],
                body=str(form.get("body") or "")[:10_000],
                until=_until(form.get("until"), "until"),
            )
        else:
            await maintenance.mode_off(
                session, rt.clock, rt.policy, signed, who.name, components=_components(form)
            )

    return await _act(request, who, rt, ui, run)


@router.post("/maintenance/schedule")
async def schedule(request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    """A maintenance window ahead of time."""

    async def run(session: AsyncSession, signed: Any, form: FormData) -> None:
        start, end = (
            _until(form.get("scheduled_for"), "scheduled_for"),
            _until(form.get("scheduled_until"), "scheduled_until"),
        )
        if start is None or end is None:
            raise InvalidInput("Start and end are required.", field="scheduled_for")
        data = schemas.MaintenanceCreate(
            title=str(form.get("title") or "Scheduled maintenance")[:200],
            body=str(form.get("body") or "")[:10_000],
            components=_components(form),
            scheduled_for=start,
            scheduled_until=end,
        )
        await maintenance.schedule(session, rt.clock, rt.policy, signed, who.name, data)

    return await _act(request, who, rt, ui, run)


@router.post("/maintenance/{maintenance_id}/cancel")
async def cancel(maintenance_id: int, request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    async def run(session: AsyncSession, signed: Any, form: FormData) -> None:
        await maintenance.cancel(session, rt.clock, rt.policy, signed, who.name, maintenance_id)

    return await _act(request, who, rt, ui, run)


async def post_from_form(
    session: AsyncSession, rt: Runtime, incident: Incident, actor: str, body: schemas.StatusUpdateForm
) -> object:
    """The incident page's "Post status update" form (run by incidents/pages.py in its transaction)."""
    signed = await links_in(session, rt)
    return await service.post_update(
        session, rt.clock, rt.policy, signed, incident, actor, update_from_form(body)
    )
