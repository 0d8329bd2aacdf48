"""JSON routes of the outbox: what was sent for an incident, and what is still trying."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.http_errors import responses
from tocsin.incidents import service as incidents
from tocsin.notify import schemas, service
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Rt = Annotated[Runtime, Depends(runtime)]
Ref = Annotated[
    str, Path(pattern=r"^(?:[Ii][Nn][Cc]-)?[0-9]{1,9}$", description="INC-42 or 42", examples=["INC-42"])
]


@router.get("/{ref}/deliveries", response_model=schemas.DeliveriesOut, responses=responses(404))
async def deliveries(ref: Ref, _: Viewer, rt: Rt) -> schemas.DeliveriesOut:
    """The incident's messages (pages, announcements, reminders) with status, attempts and last error."""
    async with rt.db.session() as session:
        incident = await incidents.get(session, ref)
        counts = await service.deliveries(session, incident.id)
        rows = await service.messages(session, incident.id)
    return schemas.DeliveriesOut(
        counts=counts, items=[schemas.DeliveryOut.model_validate(row) for row in rows]
    )
