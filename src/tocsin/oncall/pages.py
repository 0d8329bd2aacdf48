"""The console's On call page: now and next per team and layer, gaps, overrides and the override form."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from tocsin.auth.pages import Who, posted
from tocsin.auth.roles import Role
from tocsin.core.errors import InvalidInput, NotFound, TocsinError
from tocsin.oncall import schedule, service
from tocsin.oncall.api import GAP_HORIZON, OVERRIDES_AHEAD
from tocsin.runtime import Runtime, runtime
from tocsin.web.errors import PageError, row_number
from tocsin.web.render import Console, console

router = APIRouter(include_in_schema=False)

Rt = Annotated[Runtime, Depends(runtime)]
Ui = Annotated[Console, Depends(console)]
FORM = "override"


async def _page(
    rt: Runtime,
    ui: Console,
    who: Who,
    *,
    status_code: int = 200,
    error: str = "",
    posted: dict[str, str] | None = None,
) -> Response:
    now = rt.clock.now()
    async with rt.db.session() as session:
        teams = await service.on_call_now(session, rt.policy, now)
        upcoming = await service.overrides(session, now, now + OVERRIDES_AHEAD)
        listed = await service.overrides(session, now, now + GAP_HORIZON)
    gaps = service.team_gaps(rt.policy, now, now + GAP_HORIZON, listed)
    return ui.page(
        "oncall/index.html",
        status_code=status_code,
        who=who,
        now=now,
        active="oncall",
        teams=teams,
        gaps=gaps,
        overrides=upcoming,
        warnings=schedule.gap_warnings(rt.policy, now),
        rotations=[r.name for t in rt.policy.teams for r in t.rotations],
        people=rt.policy.people,
        error=error,
        posted=posted or {},
    )


@router.get("/oncall")
async def oncall_page(who: Who, rt: Rt, ui: Ui) -> Response:
    return await _page(rt, ui, who)


def _local(rt: Runtime, field: str, value: object) -> datetime:
    """A datetime-local form value (policy time zone) as an instant."""
    text = value.strip() if isinstance(value, str) else ""
    try:
        return schedule.to_utc(
            datetime.fromisoformat(text).replace(tzinfo=None, second=0, microsecond=0), rt.policy.tz
        )
    except ValueError:
        label = "Start" if field == "starts_at" else "End"
        raise InvalidInput(f"{label} is not a date and time.", field=field) from None


@router.post("/oncall/overrides")
async def add_override(request: Request, who: Who, rt: Rt, ui: Ui) -> Response:
    form = await posted(request, who, Role.commander)
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    try:
        starts_at, ends_at = (
            _local(rt, "starts_at", fields.get("starts_at")),
            _local(rt, "ends_at", fields.get("ends_at")),
        )
        async with rt.db.transaction() as session:
            await service.create_override(
                session,
                rt.clock,
                rt.policy,
                who.name,
                fields.get("rotation", ""),
                fields.get("person", ""),
                starts_at,
                ends_at,
                fields.get("note", "").strip(),
            )
    except TocsinError as exc:
        return await _page(rt, ui, who, status_code=exc.status_code, error=exc.message, posted=fields)
    rt.bus.publish("oncall")
    return RedirectResponse("/oncall", status_code=303)


@router.post("/oncall/overrides/{override_id}/delete")
async def remove_override(override_id: str, request: Request, who: Who, rt: Rt) -> Response:
    await posted(request, who, Role.commander)
    number = row_number(override_id, "override", who)
    try:
        async with rt.db.transaction() as session:
            await service.delete_override(session, rt.clock, number)
    except NotFound as exc:
        raise PageError(404, "No such override", exc.message, who=who) from None
    rt.bus.publish("oncall")
    return RedirectResponse("/oncall", status_code=303)
