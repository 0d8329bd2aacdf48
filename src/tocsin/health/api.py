"""Tocsin's own health: /api/health, /api/monitoring (the seed's jq-able summary) and /metrics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tocsin.auth.deps import principal_from_request, require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.http_errors import ErrorBody, responses
from tocsin.health import service
from tocsin.health.schemas import HealthOut, MonitoringOut
from tocsin.runtime import Runtime, runtime

router = APIRouter(tags=["health"])

_UNHEALTHY = "the database cannot be reached; the body says why"


@router.get(
    "/api/health",
    responses={200: {"model": HealthOut}, 503: {"model": HealthOut, "description": _UNHEALTHY}},
)
async def health(rt: Annotated[Runtime, Depends(runtime)]) -> JSONResponse:
    """200 with `status: ok` when Tocsin and its database work; 503 with the reason when not."""
    body = await service.health(rt.db)
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


@router.get(
    "/api/monitoring",
    responses={
        200: {"model": MonitoringOut},
        401: {"model": ErrorBody, "description": "metrics and errors need a token"},
        **responses(403),
        503: {"model": MonitoringOut | ErrorBody, "description": _UNHEALTHY},
    },
)
async def monitoring(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    type: Annotated[Literal["health", "metrics", "errors"], Query()] = "health",
) -> JSONResponse:
    """`health` is public like /api/health; `metrics` and `errors` need a viewer token."""
    health = await service.health(rt.db)
    if type == "health":
        return JSONResponse(
            {"type": type, "summary": health}, status_code=200 if health["status"] == "ok" else 503
        )
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    principal = await principal_from_request(request, rt, token)
    principal.require(Role.viewer)
    body: dict[str, Any] = {"type": type}
    if type == "metrics":
        async with rt.db.session() as session:
            body["summary"] = await service.incident_summary(session, rt.clock)
        body["summary"]["http"] = rt.metrics.summary()
    else:
        body["summary"] = rt.metrics.summary()
        body["recent"] = [
            {"at": e.at.isoformat(), "method": e.method, "route": e.route, "status": e.status}
            for e in rt.metrics.recent_errors
        ]
    return JSONResponse(body)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    },
)
async def metrics(
    _: Annotated[Principal, Depends(require(Role.viewer))], rt: Annotated[Runtime, Depends(runtime)]
) -> Response:
    """Prometheus text format: request counts and latency, open incidents, SLA breaches."""
    async with rt.db.session() as session:
        summary = await service.incident_summary(session, rt.clock)
    rt.metrics.open_incidents.clear()
    for severity in rt.policy.severity_keys:
        rt.metrics.open_incidents.labels(severity).set(summary["open_by_severity"].get(severity, 0))
    for kind, count in summary["sla_breaches"].items():
        rt.metrics.sla_breaches.labels(kind).set(count)
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
