"""Heartbeat pings and the Sentry webhook (direct routes, like the other ingest endpoints), and
read-only JSON views of the heartbeats and error-rate detectors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.formats import sentry
from tocsin.alerts.ingest import Rejected, admit, bearer_or_query_key, direct, read_json, tocsin_error
from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.durations import format_duration
from tocsin.core.http_errors import API_ERRORS
from tocsin.monitors import detector_jobs, heartbeats
from tocsin.policy.models import Policy
from tocsin.runtime import Runtime, runtime
from tocsin.web.direct import Answer, Call


async def heartbeat_ping(call: Call) -> Answer:
    """`POST` (or `GET`, for `curl` in a crontab) `/api/v1/heartbeats/{name}` with any integration key."""
    rt: Runtime = call.state
    await admit(rt, bearer_or_query_key(call), 1)
    name = call.params["name"]
    spec = heartbeats.spec_of(rt.policy, name)
    if spec is None:
        message = f"no heartbeat {name[:64]!r} in the policy"
        return Answer.json(404, {"error": {"code": "not_found", "message": message, "field": "name"}})
    async with rt.db.transaction() as session:
        pinged = await heartbeats.ping(session, rt.clock, rt.policy, spec)
    detector_jobs.publish(rt, pinged.outcomes)
    return Answer.json(
        200,
        {
            "status": "ok",
            "heartbeat": spec.name,
            "next_due_at": pinged.next_due_at.isoformat(),
            "alert_at": pinged.alert_at.isoformat(),
            "resolved": any(o.result == "resolved" for o in pinged.outcomes),
        },
    )


async def sentry_webhook(call: Call) -> Answer:
    """Count each Sentry error event towards the webhook error-rate detectors of its project."""
    rt: Runtime = call.state
    await admit(rt, bearer_or_query_key(call), 1)
    payload = read_json(call)
    secret = rt.settings.sentry_client_secret
    if secret and not sentry.signed(secret, call.body, call.header("sentry-hook-signature")):
        raise Rejected(
            401,
            ["Sentry-Hook-Signature is missing or does not sign this body with the client secret"],
            "sentry-hook-signature",
        )
    events = sentry.parse(payload, call.header("sentry-hook-resource") or None)
    counts: dict[str, int] = {}
    for spec in rt.policy.error_rates:
        if spec.source == "webhook":
            n = sum(1 for e in events if spec.sentry_project in (e.project, e.project_id))
            if n:
                counts[spec.name] = n
    if counts:
        async with rt.db.transaction() as session:
            outcomes = await detector_jobs.record_events(session, rt.clock, rt.policy, counts)
        detector_jobs.publish(rt, outcomes)
    return Answer.json(200, {"status": "ok", "events": len(events), "counted": sorted(counts)})


routes = [
    direct("/api/v1/heartbeats/{name}", heartbeat_ping, tocsin_error, ("GET", "POST")),
    direct("/api/v1/integrations/sentry", sentry_webhook, tocsin_error),
]


router = APIRouter(prefix="/api/v1", tags=["detectors"], responses=API_ERRORS)
Rt = Annotated[Runtime, Depends(runtime)]
Viewer = Annotated[Principal, Depends(require(Role.viewer))]


class HeartbeatOut(BaseModel):
    name: str
    status: str  # new | up | down
    interval: str
    grace: str
    component: str | None
    last_ping_at: datetime | None
    next_due_at: datetime | None
    down_since: datetime | None
    pings: int


class ErrorRateOut(BaseModel):
    name: str
    source: str
    component: str | None
    status: str  # warming | normal | pending | raised
    baseline: float | None
    threshold: float | None
    last_value: float | None
    unit: str
    last_sample_at: datetime | None
    next_sample_at: datetime | None
    last_error: str


@router.get("/heartbeats", response_model=list[HeartbeatOut])
async def list_heartbeats(_: Viewer, rt: Rt) -> list[HeartbeatOut]:
    """The policy's heartbeats and when each last pinged."""
    async with rt.db.session() as session:
        return await heartbeats_out(session, rt.policy)


async def heartbeats_out(session: AsyncSession, policy: Policy) -> list[HeartbeatOut]:
    """The policy's heartbeats, as the API shows them (also the console's Checks page)."""
    found = await heartbeats.listing(session, policy)
    return [
        HeartbeatOut(
            name=spec.name,
            status=row.status if row else "new",
            interval=format_duration(spec.interval),
            grace=format_duration(spec.grace),
            component=spec.component,
            last_ping_at=row.last_ping_at if row else None,
            next_due_at=row.due_at if row else None,
            down_since=row.down_since if row else None,
            pings=row.pings if row else 0,
        )
        for spec, row in found
    ]


@router.get("/error-rates", response_model=list[ErrorRateOut])
async def list_error_rates(_: Viewer, rt: Rt) -> list[ErrorRateOut]:
    """The policy's error-rate detectors with their learned baselines."""
    async with rt.db.session() as session:
        return await error_rates_out(session, rt.policy)


async def error_rates_out(session: AsyncSession, policy: Policy) -> list[ErrorRateOut]:
    """The policy's error-rate detectors, as the API shows them (also the console's Checks page)."""
    found = await detector_jobs.listing(session, policy)
    out = []
    for spec, row in found:
        state = detector_jobs.state_of(row) if row else None
        status = "warming"
        if state is not None and state.raised:
            status = "raised"
        elif state is not None and state.above:
            status = "pending"
        elif state is not None and state.samples >= spec.warmup:
            status = "normal"
        threshold = (
            detector_jobs.detector(spec).threshold(state) if state and state.baseline is not None else None
        )
        out.append(
            ErrorRateOut(
                name=spec.name,
                source=spec.source,
                component=spec.component,
                status=status,
                baseline=state.baseline if state else None,
                threshold=threshold,
                last_value=row.last_value if row else None,
                unit=spec.unit,
                last_sample_at=row.last_sample_at if row else None,
                next_sample_at=row.next_sample_at if row else None,
                last_error=row.last_error if row else "",
            )
        )
    return out
