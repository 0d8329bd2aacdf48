"""JSON routes for incidents: declare, list, act, read the timeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.errors import Conflict
from tocsin.core.http_errors import responses
from tocsin.core.ids import incident_ref
from tocsin.incidents import hypotheses, present, schemas, service, timeline
from tocsin.incidents.lifecycle import Status
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Responder = Annotated[Principal, Depends(require(Role.responder))]
Commander = Annotated[Principal, Depends(require(Role.commander))]
Rt = Annotated[Runtime, Depends(runtime)]
# Ids are 32-bit columns (PostgreSQL rejects larger parameters with an error): nine digits always fit.
# The pattern also keeps from parse_incident_ref what it cannot read ("INC-²": isdigit() but not int()).
Ref = Annotated[
    str, Path(pattern=r"^(?:[Ii][Nn][Cc]-)?[0-9]{1,9}$", description="INC-42 or 42", examples=["INC-42"])
]
INT32_MAX = 2**31 - 1
HypothesisId = Annotated[int, Path(ge=1, le=INT32_MAX, description="the seq of the event that proposed it")]

DECLARE_ATTEMPTS = 5
ERRORS = responses(404, 409)


async def _out(session: AsyncSession, rt: Runtime, incident: Incident) -> schemas.IncidentOut:
    roles = await service.role_history(session, [incident.id])
    return present.incident(incident, roles[incident.id], rt.clock.now(), rt.policy.timezone)


@asynccontextmanager
async def _changing(rt: Runtime, ref: str) -> AsyncIterator[tuple[AsyncSession, Incident]]:
    """A write transaction holding the incident's row; wakes the incident's watchers after commit."""
    async with rt.db.transaction() as session:
        incident = await service.get(session, ref, for_update=True)
        yield session, incident
    rt.bus.publish(f"incident:{incident.id}", "incidents")


async def _act(
    rt: Runtime, ref: str, change: Callable[[AsyncSession, Incident], Awaitable[object]]
) -> schemas.IncidentOut:
    async with _changing(rt, ref) as (session, incident):
        await change(session, incident)
        await session.flush()
        return await _out(session, rt, incident)


async def _event(
    rt: Runtime, ref: str, kind: EventKind, actor: str, data: dict[str, object]
) -> schemas.EventOut:
    async with _changing(rt, ref) as (session, incident):
        event = await service.record(session, rt.clock, incident, kind, actor, data)
        return present.event(event)


@router.post("", response_model=schemas.IncidentOut, status_code=201, responses=responses(409))
async def declare(body: schemas.IncidentCreate, who: Responder, rt: Rt) -> schemas.IncidentOut:
    """Declare an incident; its SLA clock starts at `detected_at` (default now)."""
    for attempt in range(DECLARE_ATTEMPTS):
        try:
            async with rt.db.transaction() as session:
                incident = await service.declare(session, rt.clock, rt.policy, who.name, body)
                out = await _out(session, rt, incident)
            break
        except IntegrityError:
            # Two declarations raced for the same channel name; the next try sees the winner's.
            if attempt == DECLARE_ATTEMPTS - 1:
                raise Conflict("could not allocate a channel name; try again", field="title") from None
    rt.bus.publish("incidents")
    return out


@router.get("", response_model=schemas.IncidentPage)
async def list_incidents(
    _: Viewer,
    rt: Rt,
    status: Annotated[list[Status] | None, Query()] = None,
    severity: Annotated[list[schemas.SeverityKey] | None, Query(max_length=10)] = None,
    open: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> schemas.IncidentPage:
    """Incidents, newest first, filtered by status, severity or open only."""
    async with rt.db.session() as session:
        rows, total = await service.list_incidents(
            session,
            statuses=status or (),
            severities=severity or (),
            open_only=open,
            limit=limit,
            offset=offset,
        )
        roles = await service.role_history(session, [r.id for r in rows])
    now, tz = rt.clock.now(), rt.policy.timezone
    items = [present.incident(r, roles[r.id], now, tz) for r in rows]
    return schemas.IncidentPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{ref}", response_model=schemas.IncidentOut, responses=ERRORS)
async def show(ref: Ref, _: Viewer, rt: Rt) -> schemas.IncidentOut:
    async with rt.db.session() as session:
        return await _out(session, rt, await service.get(session, ref))


@router.post("/{ref}/acknowledge", response_model=schemas.IncidentOut, responses=ERRORS)
async def acknowledge(ref: Ref, body: schemas.Acknowledge, who: Responder, rt: Rt) -> schemas.IncidentOut:
    return await _act(
        rt, ref, lambda s, i: service.acknowledge(s, rt.clock, rt.policy, i, who.name, body.note)
    )


@router.post("/{ref}/status", response_model=schemas.IncidentOut, responses=ERRORS)
async def change_status(ref: Ref, body: schemas.StatusChange, who: Responder, rt: Rt) -> schemas.IncidentOut:
    """Move along the lifecycle; 409 names the current status and the allowed ones."""
    return await _act(
        rt,
        ref,
        lambda s, i: service.change_status(s, rt.clock, rt.policy, i, body.status, who.name, body.note),
    )


@router.post("/{ref}/resolve", response_model=schemas.IncidentOut, responses=ERRORS)
async def resolve(ref: Ref, body: schemas.Resolve, who: Responder, rt: Rt) -> schemas.IncidentOut:
    return await _act(
        rt,
        ref,
        lambda s, i: service.change_status(
            s, rt.clock, rt.policy, i, Status.resolved, who.name, body.summary, override=body.override_reason
        ),
    )


@router.post("/{ref}/close", response_model=schemas.IncidentOut, responses=ERRORS)
async def close(ref: Ref, who: Commander, rt: Rt) -> schemas.IncidentOut:
    return await _act(
        rt, ref, lambda s, i: service.change_status(s, rt.clock, rt.policy, i, Status.closed, who.name)
    )


@router.post("/{ref}/reopen", response_model=schemas.IncidentOut, responses=ERRORS)
async def reopen(ref: Ref, body: schemas.Reopen, who: Commander, rt: Rt) -> schemas.IncidentOut:
    return await _act(rt, ref, lambda s, i: service.reopen(s, rt.clock, rt.policy, i, who.name, body.reason))


@router.post("/{ref}/severity", response_model=schemas.IncidentOut, responses=ERRORS)
async def change_severity(
    ref: Ref, body: schemas.SeverityChange, who: Responder, rt: Rt
) -> schemas.IncidentOut:
    """Re-classify with a reason; every deadline is recomputed from the detection time."""
    return await _act(
        rt,
        ref,
        lambda s, i: service.change_severity(s, rt.clock, rt.policy, i, body.severity, who.name, body.reason),
    )


@router.post("/{ref}/roles", response_model=schemas.IncidentOut, responses=ERRORS)
async def change_role(ref: Ref, body: schemas.RoleChange, who: Commander, rt: Rt) -> schemas.IncidentOut:
    return await _act(rt, ref, lambda s, i: service.change_role(s, rt.clock, i, body, who.name))


@router.get("/{ref}/roles", response_model=list[schemas.RoleOut], responses=ERRORS)
async def role_history(ref: Ref, _: Viewer, rt: Rt) -> list[schemas.RoleOut]:
    async with rt.db.session() as session:
        incident = await service.get(session, ref)
        history = await service.role_history(session, [incident.id])
    return present.role_history(history[incident.id])


@router.post("/{ref}/notes", response_model=schemas.EventOut, status_code=201, responses=ERRORS)
async def add_note(ref: Ref, body: schemas.Note, who: Responder, rt: Rt) -> schemas.EventOut:
    return await _event(rt, ref, EventKind.note, who.name, {"text": body.text})


@router.post("/{ref}/actions", response_model=schemas.EventOut, status_code=201, responses=ERRORS)
async def add_action(ref: Ref, body: schemas.Note, who: Responder, rt: Rt) -> schemas.EventOut:
    """Record a mitigation or other action taken."""
    return await _event(rt, ref, EventKind.action, who.name, {"text": body.text})


@router.post("/{ref}/commands", response_model=schemas.EventOut, status_code=201, responses=ERRORS)
async def add_command(ref: Ref, body: schemas.CommandRun, who: Responder, rt: Rt) -> schemas.EventOut:
    """Record a command that was run, with its output and exit code."""
    return await _event(rt, ref, EventKind.command, who.name, body.model_dump())


@router.post("/{ref}/assignments", response_model=schemas.EventOut, status_code=201, responses=ERRORS)
async def add_assignment(ref: Ref, body: schemas.Assignment, who: Responder, rt: Rt) -> schemas.EventOut:
    return await _event(rt, ref, EventKind.assignment, who.name, body.model_dump())


@router.post("/{ref}/updates", response_model=schemas.EventOut, status_code=201, responses=ERRORS)
async def post_update(ref: Ref, body: schemas.Note, who: Responder, rt: Rt) -> schemas.EventOut:
    """Post a management update; the next one falls due after the severity's cadence."""
    async with _changing(rt, ref) as (session, incident):
        event = await service.post_update(session, rt.clock, rt.policy, incident, who.name, body.text)
        return present.event(event)


@router.post("/{ref}/hypotheses", response_model=schemas.EventOut, status_code=201, responses=ERRORS)
async def propose(ref: Ref, body: schemas.HypothesisCreate, who: Responder, rt: Rt) -> schemas.EventOut:
    """Propose a hypothesis; its id is the `hypothesis` field of the returned event."""
    async with _changing(rt, ref) as (session, incident):
        return present.event(await hypotheses.propose(session, rt.clock, incident, who.name, body.text))


@router.post(
    "/{ref}/hypotheses/{hypothesis}", response_model=schemas.EventOut, status_code=201, responses=ERRORS
)
async def settle(
    ref: Ref, hypothesis: HypothesisId, body: schemas.HypothesisResult, who: Responder, rt: Rt
) -> schemas.EventOut:
    """Record a hypothesis as confirmed or refuted, with the result that showed it."""
    async with _changing(rt, ref) as (session, incident):
        event = await hypotheses.settle(session, rt.clock, incident, hypothesis, body, who.name)
        return present.event(event)


@router.get("/{ref}/timeline", response_model=list[schemas.EventOut], responses=ERRORS)
async def get_timeline(
    ref: Ref,
    _: Viewer,
    rt: Rt,
    after: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[schemas.EventOut]:
    """Timeline events after sequence number `after`, oldest first."""
    async with rt.db.session() as session:
        incident = await service.get(session, ref)
        rows = await timeline.events(session, incident.id, after, limit)
    return [present.event(r) for r in rows]


@router.get("/{ref}/verify", response_model=schemas.VerifyOut, responses=ERRORS)
async def verify(ref: Ref, _: Viewer, rt: Rt) -> schemas.VerifyOut:
    """Recompute the timeline's hash chain and say whether it is intact."""
    async with rt.db.session() as session:
        incident = await service.get(session, ref)
        intact, checked, detail = await timeline.verify(session, incident)
    return schemas.VerifyOut(id=incident_ref(incident.id), intact=intact, events=checked, detail=detail)
