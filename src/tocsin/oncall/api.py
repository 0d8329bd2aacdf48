"""JSON routes for on-call: who is on call now and next, rotations, overrides, iCal feeds."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import PlainValidator

from tocsin.auth.deps import bearer, principal_from_request, require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.errors import Forbidden, NotFound
from tocsin.core.http_errors import responses
from tocsin.engine import secrets
from tocsin.oncall import ical, schedule, schemas, service
from tocsin.oncall.models import Override
from tocsin.policy.models import Policy
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1", tags=["oncall"])

Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Commander = Annotated[Principal, Depends(require(Role.commander))]
Rt = Annotated[Runtime, Depends(runtime)]
RotationName = Annotated[str, Path(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)]
INT32_MAX = 2**31 - 1

GAP_HORIZON = schedule.GAP_HORIZON
FEED_PAST = timedelta(weeks=2)
FEED_AHEAD = timedelta(weeks=8)
OVERRIDES_AHEAD = timedelta(days=365)


def _instant(value: object) -> datetime:
    # Only ISO 8601 text: pydantic would also read a bare number as seconds since 1970.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not ISO_INSTANT.fullmatch(value):
        raise ValueError("expected an ISO 8601 date and time, e.g. 2026-11-26T09:00:00-05:00")
    return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))


ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?")
Instant = Annotated[datetime, PlainValidator(_instant, json_schema_input_type=str)]


@router.get("/oncall", response_model=schemas.OnCallOut, responses=responses(422))
async def on_call(
    _: Viewer,
    rt: Rt,
    team: Annotated[str | None, Query(max_length=64, description="one team (default: all)")] = None,
    at: Annotated[Instant | None, Query(description="ISO 8601 instant with offset (default: now)")] = None,
) -> schemas.OnCallOut:
    """Who is on call now (or `at`) and who is next, per team, layer and rotation."""
    when = service.aware(at, "at") if at is not None else rt.clock.now()
    async with rt.db.session() as session:
        teams = await service.on_call_now(session, rt.policy, when, team)
    return schemas.OnCallOut(at=when, timezone=rt.policy.timezone, teams=teams)


async def calendar_token(rt: Runtime, rotation: str) -> str:
    """The token that opens a rotation's iCal feed without an API token."""
    key = await secrets.signing_key(rt.db, rt.settings.secret_key)
    return secrets.sign(key, "calendar", rotation)


def _span(lo: datetime, hi: datetime) -> schemas.Span:
    return schemas.Span(starts_at=lo, ends_at=hi)


async def rotations_overview(rt: Runtime, base_url: str) -> schemas.RotationsOut:
    """Every rotation with its gaps in the next 4 weeks and its feed URL; teams' primary gaps; warnings."""
    policy: Policy = rt.policy
    now = rt.clock.now()
    end = now + GAP_HORIZON
    async with rt.db.session() as session:
        listed = await service.overrides(session, now, end)
    out: list[schemas.RotationOut] = []
    for team in policy.teams:
        for r in team.rotations:
            token = await calendar_token(rt, r.name)
            gaps = service.rotation_gaps(policy, r.name, now, end, listed)
            active = (
                schemas.ActiveOut(
                    starts=r.active.starts.strftime("%H:%M"),
                    ends=r.active.ends.strftime("%H:%M"),
                    days=list(r.active.days),
                )
                if r.active
                else None
            )
            out.append(
                schemas.RotationOut(
                    name=r.name,
                    team=team.name,
                    layer=r.layer,
                    members=list(r.members),
                    handoff=service.handoff_text(r.handoff),
                    start=r.start.strftime("%Y-%m-%d %H:%M"),
                    active=active,
                    gaps=[_span(lo, hi) for lo, hi in gaps],
                    calendar_url=f"{base_url.rstrip('/')}/api/v1/rotations/{r.name}/calendar.ics?token={quote(token)}",
                )
            )
    teams = [
        schemas.TeamGaps(team=name, primary_gaps=[_span(lo, hi) for lo, hi in spans])
        for name, spans in service.team_gaps(policy, now, end, listed).items()
    ]
    warnings = schedule.gap_warnings(policy, now)
    return schemas.RotationsOut(timezone=policy.timezone, rotations=out, teams=teams, warnings=warnings)


@router.get("/rotations", response_model=schemas.RotationsOut)
async def rotations(request: Request, _: Viewer, rt: Rt) -> schemas.RotationsOut:
    """Rotations from the policy, with their gaps over the next 4 weeks and their iCal feed URLs."""
    return await rotations_overview(rt, str(request.base_url))


@router.get(
    "/rotations/{name}/calendar.ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "an iCalendar feed"},
        **responses(403, 404),
    },
)
async def rotation_calendar(
    name: RotationName,
    request: Request,
    rt: Rt,
    token: Annotated[
        str | None, Query(max_length=128, description="the feed token from GET /api/v1/rotations")
    ] = None,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Response:
    """The rotation's shifts from 2 weeks ago to 8 weeks ahead as iCal; `?token=` or a viewer's API token."""
    if token is not None:
        if not secrets.verify(
            await secrets.signing_key(rt.db, rt.settings.secret_key), token, "calendar", name
        ):
            raise Forbidden(
                "wrong calendar token; copy the feed URL from GET /api/v1/rotations", field="token"
            )
    else:
        who = await principal_from_request(request, rt, credentials.credentials if credentials else None)
        who.require(Role.viewer)
    try:
        schedule.find_rotation(rt.policy, name)
    except KeyError:
        raise NotFound(f'no rotation "{name}"', field="name") from None
    now = rt.clock.now()
    async with rt.db.session() as session:
        listed = await service.overrides(session, now - FEED_PAST, now + FEED_AHEAD, [name])
    shifts = schedule.shifts(rt.policy, name, now - FEED_PAST, now + FEED_AHEAD, listed)
    body = ical.calendar(name, shifts, now, host=request.url.hostname or "tocsin")
    headers = {"Content-Disposition": f'inline; filename="{name}.ics"', "Cache-Control": "no-store"}
    return Response(body, media_type="text/calendar; charset=utf-8", headers=headers)


@router.get("/overrides", response_model=list[schemas.OverrideOut], responses=responses(422))
async def list_overrides(
    _: Viewer,
    rt: Rt,
    start: Annotated[Instant | None, Query(description="from (default: now)")] = None,
    end: Annotated[Instant | None, Query(description="to (default: a year from start)")] = None,
    rotation: Annotated[str | None, Query(max_length=64, description="one rotation (default: all)")] = None,
) -> list[Override]:
    """Overrides that are not deleted and overlap [start, end), oldest first."""
    lo = service.aware(start, "start") if start is not None else rt.clock.now()
    hi = service.aware(end, "end") if end is not None else lo + OVERRIDES_AHEAD
    async with rt.db.session() as session:
        return await service.overrides(session, lo, hi, [rotation] if rotation else None)


@router.post("/overrides", response_model=schemas.OverrideOut, status_code=201, responses=responses(422))
async def create_override(body: schemas.OverrideCreate, who: Commander, rt: Rt) -> Override:
    """Put `person` on call for `rotation` from `starts_at` to `ends_at` (at most 90 days)."""
    async with rt.db.transaction() as session:
        row = await service.create_override(
            session,
            rt.clock,
            rt.policy,
            who.name,
            body.rotation,
            body.person,
            body.starts_at,
            body.ends_at,
            body.note,
        )
    rt.bus.publish("oncall")
    return row


@router.delete("/overrides/{override_id}", response_model=schemas.OverrideOut, responses=responses(404))
async def delete_override(
    override_id: Annotated[int, Path(ge=1, le=INT32_MAX)], _: Commander, rt: Rt
) -> Override:
    """Withdraw an override; the schedule applies again."""
    async with rt.db.transaction() as session:
        row = await service.delete_override(session, rt.clock, override_id)
    rt.bus.publish("oncall")
    return row
