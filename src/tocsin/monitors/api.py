"""JSON routes to read health-check monitors: state, uptime, raw results, hourly and daily aggregates."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.monitors import schemas, service
from tocsin.policy.models import Policy
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1", tags=["monitors"])
Rt = Annotated[Runtime, Depends(runtime)]
Viewer = Annotated[Principal, Depends(require(Role.viewer))]


def _monitor(view: service.MonitorView) -> schemas.MonitorOut:
    spec, state = view.spec, view.state
    last = None
    if state is not None and state.last_checked_at is not None:
        last = schemas.ResultOut(
            at=state.last_checked_at,
            ok=bool(state.last_ok),
            status_code=state.last_status_code,
            latency_ms=state.last_latency_ms,
            error=state.last_error,
            failed=state.last_failed,
        )
    return schemas.MonitorOut(
        name=spec.name,
        component=spec.component,
        kind=spec.kind,
        target=spec.target,
        enabled=spec.enabled,
        interval_seconds=spec.interval.total_seconds(),
        conditions=[str(c) for c in spec.checked_conditions],
        failure_threshold=spec.failure_threshold,
        success_threshold=spec.success_threshold,
        status=state.status if state else "unknown",
        since=state.changed_at if state else None,
        consecutive_failures=state.consecutive_failures if state else 0,
        consecutive_successes=state.consecutive_successes if state else 0,
        alerted=state.alerted if state else False,
        last_result=last,
        uptime=view.uptime,
    )


@router.get("/monitors", response_model=list[schemas.MonitorOut])
async def list_monitors(_: Viewer, rt: Rt) -> list[schemas.MonitorOut]:
    """Every monitor of the policy with its status, last result and uptime over 24h, 7d and 30d."""
    async with rt.db.session() as session:
        return await monitors_out(session, rt.policy, rt.clock.now())


async def monitors_out(session: AsyncSession, policy: Policy, now: datetime) -> list[schemas.MonitorOut]:
    """Every monitor, as the API shows it (also the console's Checks page)."""
    return [_monitor(v) for v in await service.overview(session, policy, now)]


@router.get("/monitors/{name}/results", response_model=list[schemas.ResultOut])
async def monitor_results(
    name: str, _: Viewer, rt: Rt, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[schemas.ResultOut]:
    """A monitor's latest results, newest first (raw results are kept for 7 days)."""
    async with rt.db.session() as session:
        rows = await service.results(session, rt.policy, name, limit)
    return [schemas.ResultOut.model_validate(r) for r in rows]


@router.get("/monitors/{name}/aggregates", response_model=list[schemas.AggregateOut])
async def monitor_aggregates(
    name: str,
    _: Viewer,
    rt: Rt,
    period: Literal["hourly", "daily"] = "hourly",
    days: Annotated[int, Query(ge=1, le=1830)] = 7,
) -> list[schemas.AggregateOut]:
    """A monitor's closed hours or days, oldest first: checks, time-weighted uptime, latency percentiles."""
    async with rt.db.session() as session:
        rows = await service.aggregates(
            session, rt.policy, name, period, rt.clock.now() - timedelta(days=days)
        )
    return [
        schemas.AggregateOut(
            start=r.start,
            checks=r.checks,
            ok_checks=r.ok_checks,
            up_seconds=r.up_seconds,
            observed_seconds=r.observed_seconds,
            uptime=round(r.up_seconds / r.observed_seconds, 6) if r.observed_seconds else None,
            latency_p50=r.latency_p50,
            latency_p95=r.latency_p95,
            latency_p99=r.latency_p99,
        )
        for r in rows
    ]
