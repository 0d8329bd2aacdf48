"""JSON routes to post status updates, switch maintenance mode, schedule maintenance, list subscribers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.http_errors import responses
from tocsin.core.ids import incident_ref
from tocsin.incidents import service as incidents
from tocsin.runtime import Runtime, runtime
from tocsin.statuspage import maintenance, schemas, service, subscribers
from tocsin.statuspage.links import links_in
from tocsin.statuspage.models import Maintenance, StatusUpdate

router = APIRouter(prefix="/api/v1", tags=["status page"])

Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Responder = Annotated[Principal, Depends(require(Role.responder))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
Rt = Annotated[Runtime, Depends(runtime)]
Ref = Annotated[
    str, Path(pattern=r"^(?:[Ii][Nn][Cc]-)?[0-9]{1,9}$", description="INC-42 or 42", examples=["INC-42"])
]
MaintenanceId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def update_out(row: StatusUpdate) -> schemas.StatusUpdateOut:
    return schemas.StatusUpdateOut(
        id=row.id,
        incident=incident_ref(row.incident_id) if row.incident_id is not None else None,
        maintenance=row.maintenance_id,
        status=row.status,
        body=row.body,
        affected_components=[schemas.AffectedComponent.model_validate(a) for a in row.affected],
        created_by=row.created_by,
        created_at=row.created_at,
    )


def maintenance_out(row: Maintenance) -> schemas.MaintenanceOut:
    return schemas.MaintenanceOut.model_validate(row, from_attributes=True)


def changed(request: Request, rt: Runtime) -> None:
    """After a commit: this process re-renders the page at once and the sender wakes for the messages."""
    request.app.state.status_cache.invalidate()
    rt.bus.publish("outbox", "incidents")


@router.post(
    "/incidents/{ref}/status-updates",
    response_model=schemas.StatusUpdateOut,
    status_code=201,
    tags=["incidents"],
    responses=responses(404, 409),
)
async def post_update(
    ref: Ref, body: schemas.StatusUpdateCreate, who: Responder, rt: Rt, request: Request
) -> schemas.StatusUpdateOut:
    """Publish a status-page update of a customer-facing incident (template-filled when `body` is empty)."""
    async with rt.db.transaction() as session:
        signed = await links_in(session, rt)
        incident = await incidents.get(session, ref, for_update=True)
        row = await service.post_update(session, rt.clock, rt.policy, signed, incident, who.name, body)
        out = update_out(row)
    changed(request, rt)
    rt.bus.publish(f"incident:{incident.id}")
    return out


@router.get(
    "/incidents/{ref}/status-updates",
    response_model=list[schemas.StatusUpdateOut],
    tags=["incidents"],
    responses=responses(404),
)
async def list_updates(ref: Ref, _: Viewer, rt: Rt) -> list[schemas.StatusUpdateOut]:
    """The incident's status-page updates, oldest first."""
    async with rt.db.session() as session:
        incident = await incidents.get(session, ref)
        return [update_out(u) for u in await service.updates_of(session, incident.id)]


@router.get(
    "/incidents/{ref}/status-updates/draft",
    response_model=schemas.Draft,
    tags=["incidents"],
    responses=responses(404),
)
async def draft(ref: Ref, _: Viewer, rt: Rt) -> schemas.Draft:
    """The next update as the policy's template and the incident suggest it, to edit before posting."""
    async with rt.db.session() as session:
        incident = await incidents.get(session, ref)
        return await service.draft(session, rt.clock, rt.policy, incident)


@router.post(
    "/status/maintenance-mode", response_model=list[schemas.MaintenanceOut], responses=responses(409)
)
async def maintenance_mode(
    body: schemas.MaintenanceMode, who: Responder, rt: Rt, request: Request
) -> list[schemas.MaintenanceOut]:
    """Switch maintenance mode on (components under maintenance, their alerts muted) or off."""
    async with rt.db.transaction() as session:
        signed = await links_in(session, rt)
        if body.on:
            rows = [
                await maintenance.mode_on(
                    session,
                    rt.clock,
                    rt.policy,
                    signed,
                    who.name,
                    components=body.components,
                    title=body.title,
                    body=body.body,
                    until=body.until,
                )
            ]
        else:
            rows = await maintenance.mode_off(
                session, rt.clock, rt.policy, signed, who.name, components=body.components
            )
        out = [maintenance_out(r) for r in rows]
    changed(request, rt)
    return out


@router.post("/status/maintenances", response_model=schemas.MaintenanceOut, status_code=201)
async def schedule(
    body: schemas.MaintenanceCreate, who: Responder, rt: Rt, request: Request
) -> schemas.MaintenanceOut:
    """Schedule a maintenance window: announced now, reminded, started and completed on time."""
    async with rt.db.transaction() as session:
        signed = await links_in(session, rt)
        out = maintenance_out(
            await maintenance.schedule(session, rt.clock, rt.policy, signed, who.name, body)
        )
    changed(request, rt)
    return out


@router.get("/status/maintenances", response_model=list[schemas.MaintenanceOut])
async def list_maintenances(
    _: Viewer, rt: Rt, open_only: Annotated[bool, Query(alias="open")] = False
) -> list[schemas.MaintenanceOut]:
    """Maintenance windows, latest first (`open=true`: scheduled and running only)."""
    async with rt.db.session() as session:
        return [maintenance_out(r) for r in await maintenance.listing(session, open_only=open_only)]


@router.delete(
    "/status/maintenances/{maintenance_id}",
    response_model=schemas.MaintenanceOut,
    responses=responses(404, 409),
)
async def cancel(
    maintenance_id: MaintenanceId, who: Responder, rt: Rt, request: Request
) -> schemas.MaintenanceOut:
    """Cancel a scheduled maintenance window that has not begun."""
    async with rt.db.transaction() as session:
        signed = await links_in(session, rt)
        out = maintenance_out(
            await maintenance.cancel(session, rt.clock, rt.policy, signed, who.name, maintenance_id)
        )
    changed(request, rt)
    return out


@router.get("/status/subscribers", response_model=list[schemas.SubscriberOut])
async def list_subscribers(_: Admin, rt: Rt) -> list[schemas.SubscriberOut]:
    """Everyone subscribed to status updates (they are personal data: admins only)."""
    async with rt.db.session() as session:
        return [
            schemas.SubscriberOut.model_validate(r, from_attributes=True)
            for r in await subscribers.listing(session)
        ]
