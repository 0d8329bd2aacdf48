"""JSON routes for user reports: public intake (no token, rate-limited per client) and triage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.http_errors import API_ERRORS, ErrorBody, responses
from tocsin.core.ids import incident_ref
from tocsin.reports import jobs, schemas, service
from tocsin.reports.models import Report
from tocsin.reports.service import RateLimited
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Responder = Annotated[Principal, Depends(require(Role.responder))]
Rt = Annotated[Runtime, Depends(runtime)]
ReportId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the report's number")]

RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorBody,
        "description": f"over {service.RATE_LIMIT} reports from this client in "
        f"{int(service.RATE_WINDOW.total_seconds() // 60)} minutes; `Retry-After` says when to try again",
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    }
}


def client_address(request: Request) -> str:
    """The peer's address (uvicorn puts a trusted proxy's X-Forwarded-For here)."""
    return request.client.host if request.client else "unknown"


def out(row: Report) -> schemas.ReportOut:
    return schemas.ReportOut(
        id=row.id,
        component=row.component,
        description=row.description,
        email=row.email,
        channel=row.channel,
        client=row.client,
        created_at=row.created_at,
        status=row.status,
        incident=incident_ref(row.incident_id) if row.incident_id is not None else None,
        triaged_by=row.triaged_by,
        triaged_at=row.triaged_at,
    )


def rate_limited(exc: RateLimited) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=429, headers={"Retry-After": str(exc.retry_after)})


@router.post(
    "",
    response_model=schemas.ReportReceipt,
    status_code=201,
    responses={**responses(400, 413, 415, 422), **RATE_LIMITED},
)
async def submit(body: schemas.ReportCreate, request: Request, rt: Rt) -> Any:
    """Report a problem: public, no token; at most a few reports per client address in ten minutes."""
    client = client_address(request)
    try:
        row = await jobs.take(
            rt, body, channel="api", client=client, reporter=service.reporter_by_address(client)
        )
    except RateLimited as exc:
        return rate_limited(exc)
    return schemas.ReportReceipt(id=row.id, component=row.component, created_at=row.created_at, status="new")


@router.get("", response_model=schemas.ReportPage, responses=API_ERRORS)
async def list_reports(
    _: Responder,
    rt: Rt,
    status: schemas.TriageStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> schemas.ReportPage:
    """Reports, newest first, optionally of one triage status (responders: they carry contact details)."""
    async with rt.db.session() as session:
        rows, total = await service.listing(session, status, limit, offset)
    return schemas.ReportPage(items=[out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{report_id}", response_model=schemas.ReportOut, responses={**API_ERRORS, **responses(404)})
async def show(report_id: ReportId, _: Responder, rt: Rt) -> schemas.ReportOut:
    async with rt.db.session() as session:
        return out(await service.get(session, report_id))


@router.post(
    "/{report_id}/triage",
    response_model=schemas.ReportOut,
    responses={**API_ERRORS, **responses(404, 409)},
)
async def triage(report_id: ReportId, body: schemas.Triage, who: Responder, rt: Rt) -> schemas.ReportOut:
    """Link a report to an open incident (a note on its timeline says so) or dismiss it."""
    async with rt.db.transaction() as session:
        row, incident = await service.triage(
            session, rt.clock, report_id, body.action, body.incident, who.name
        )
        result = out(row)
    if incident is not None:
        rt.bus.publish(f"incident:{incident.id}", "incidents")
    return result
