"""JSON routes to manage integrations and silences and to read alerts (the ingest routes are in ingest.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import integrations, matchers, schemas, silences, triage
from tocsin.alerts.models import Alert, Integration
from tocsin.auth.deps import require
from tocsin.auth.roles import Role
from tocsin.auth.service import Principal
from tocsin.core.errors import InvalidInput
from tocsin.core.http_errors import responses
from tocsin.incidents import service as incidents
from tocsin.runtime import Runtime, runtime

router = APIRouter(prefix="/api/v1", tags=["alerts"])
Rt = Annotated[Runtime, Depends(runtime)]
Admin = Annotated[Principal, Depends(require(Role.admin))]
Responder = Annotated[Principal, Depends(require(Role.responder))]
Viewer = Annotated[Principal, Depends(require(Role.viewer))]

ENDPOINTS = {
    "alertmanager": "/api/v1/integrations/alertmanager",
    "prometheus": "/api/v2/alerts",
    "pagerduty": "/v2/enqueue",
    "generic": "/api/v1/integrations/generic",
    "heartbeat": "/api/v1/heartbeats/{name}",
    "sentry": "/api/v1/integrations/sentry",
}


def _out(row: Integration) -> schemas.IntegrationOut:
    return schemas.IntegrationOut(
        name=row.name,
        kind=row.kind,
        service=row.service,
        severity_rules=row.severity_rules,
        from_policy=row.from_policy,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        endpoints={"url": ENDPOINTS.get(row.kind, "")},
    )


@router.post(
    "/integrations", response_model=schemas.IntegrationCreated, status_code=201, responses=responses(409)
)
async def create_integration(
    body: schemas.IntegrationCreate, who: Admin, rt: Rt
) -> schemas.IntegrationCreated:
    """Create an integration and show its secret key once."""
    for i, rule in enumerate(body.severity_rules):
        if rule.severity not in rt.policy.severities:
            raise InvalidInput(f"unknown severity {rule.severity}", field=f"severity_rules.{i}.severity")
    async with rt.db.transaction() as session:
        row, key = await integrations.create(
            session,
            rt.clock,
            rt.policy,
            name=body.name,
            kind=body.kind,
            service=body.service,
            severity_rules=body.severity_rules,
            actor=who.name,
        )
        out = _out(row)
    return schemas.IntegrationCreated(**out.model_dump(), key=key)


@router.get("/integrations", response_model=list[schemas.IntegrationOut])
async def list_integrations(_: Admin, rt: Rt) -> list[schemas.IntegrationOut]:
    async with rt.db.session() as session:
        return [_out(r) for r in await integrations.listing(session)]


IntegrationName = Annotated[str, Path(min_length=1, max_length=64)]


@router.delete("/integrations/{name}", response_model=schemas.IntegrationOut, responses=responses(404, 409))
async def disable_integration(name: IntegrationName, _: Admin, rt: Rt) -> schemas.IntegrationOut:
    """Disable an integration: its key is refused from now on (by other `--workers` processes within
    10 seconds); its alerts stay. Integrations declared in the policy follow the policy (409)."""
    async with rt.db.transaction() as session:
        out = _out(await integrations.disable(session, rt.clock, name))
    rt.keys.forget()
    return out


@router.post(
    "/integrations/{name}/enable", response_model=schemas.IntegrationOut, responses=responses(404, 409)
)
async def enable_integration(name: IntegrationName, _: Admin, rt: Rt) -> schemas.IntegrationOut:
    """Accept a disabled integration's key again."""
    async with rt.db.transaction() as session:
        out = _out(await integrations.enable(session, name))
    rt.keys.forget()
    return out


@router.post(
    "/integrations/{name}/key", response_model=schemas.IntegrationCreated, responses=responses(404, 409)
)
async def rotate_integration_key(name: IntegrationName, _: Admin, rt: Rt) -> schemas.IntegrationCreated:
    """Give an integration a new secret key, shown once; the old key is refused from now on (by other
    `--workers` processes within 10 seconds)."""
    async with rt.db.transaction() as session:
        row, key = await integrations.rotate(session, name)
        out = _out(row)
    rt.keys.forget()
    return schemas.IntegrationCreated(**out.model_dump(), key=key)


def _alert(row: Alert, names: dict[int, str]) -> schemas.AlertOut:
    return schemas.AlertOut(
        id=row.id,
        integration=names.get(row.integration_id, str(row.integration_id)),
        dedup_key=row.dedup_key,
        status=row.status,
        summary=row.summary,
        severity=row.severity,
        severity_reason=row.severity_reason,
        source=row.source,
        service=row.service,
        component=row.component,
        labels=row.labels,
        annotations=row.annotations,
        details=row.details,
        links=row.links,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        count=row.count,
        muted_by=row.muted_by,
        incident=f"INC-{row.incident_id}" if row.incident_id else None,
        resolved_at=row.resolved_at,
    )


@router.get("/incidents/{ref}/alerts", response_model=list[schemas.AlertOut], tags=["incidents"])
async def incident_alerts(
    ref: str, _: Viewer, rt: Rt, limit: Annotated[int, Query(ge=1, le=1000)] = 500
) -> list[schemas.AlertOut]:
    """The alerts attached to an incident, newest first."""
    async with rt.db.session() as session:
        incident = await incidents.get(session, ref)
        rows = await triage.for_incident(session, incident.id, limit)
        names = {r.id: r.name for r in await integrations.listing(session)}
    return [_alert(r, names) for r in rows]


AlertStatus = Annotated[str, Query(pattern="^(open|firing|acknowledged|resolved|all)$")]
IncidentRef = Annotated[str | None, Query(description="only this incident's alerts (INC-42)")]
MAX_MATCHERS = 50
Filter = Annotated[
    list[str],
    Query(
        max_length=2000,
        description='label matchers, as Alertmanager\'s: alertname="DiskFull", instance=~"db-.*"',
    ),
]


async def _incident_id(session: AsyncSession, ref: str | None) -> int | None:
    return None if ref is None else (await incidents.get(session, ref)).id


def parsed_filter(texts: list[str]) -> list[dict[str, Any]]:
    """The matchers of every `filter` value (each one or several, comma-separated); 422 naming `filter`."""
    try:
        found = [m for text in texts for m in matchers.parse_filter(text)]
    except ValueError as exc:
        raise InvalidInput(str(exc), field="filter") from None
    if len(found) > MAX_MATCHERS:
        raise InvalidInput(f"at most {MAX_MATCHERS} matchers", field="filter")
    return found


@router.get("/alerts", response_model=list[schemas.AlertOut], responses=responses(404))
async def list_alerts(
    _: Viewer,
    rt: Rt,
    request: Request,
    response: Response,
    status: AlertStatus = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    filter: Filter = [],  # noqa: B006  # Alertmanager's own name for it
    incident: IncidentRef = None,
    before: Annotated[
        int | None, Query(ge=1, le=triage.MAX_ID, description="only alerts older than this id")
    ] = None,
) -> list[schemas.AlertOut]:
    """Alerts, newest first (default: those not resolved), whose labels match every `filter` matcher
    (the silences' own matching). A filter looks at 20,000 candidates at most; the header
    `Tocsin-Filter-Cut: true` says it stopped there. When older alerts may match (a full page, or a cut
    filter), the `Link` header's `rel="next"` URL goes on from where this answer stopped (`before`)."""
    wanted = parsed_filter(filter)
    async with rt.db.session() as session:
        incident_id = await _incident_id(session, incident)
        found = await triage.filtered(session, status, wanted, limit, incident_id, before=before)
        names = {r.id: r.name for r in await integrations.listing(session)}
    if found.cut:
        response.headers["Tocsin-Filter-Cut"] = "true"
    if found.next_before is not None:
        response.headers["Link"] = (
            f'<{request.url.include_query_params(before=found.next_before)}>; rel="next"'
        )
    return [_alert(r, names) for r in found.alerts]


@router.get("/alerts/groups", response_model=list[schemas.AlertGroupCount], responses=responses(404))
async def alert_groups(
    _: Viewer,
    rt: Rt,
    by: Annotated[str, Query(max_length=128, description="the label to count by")] = "alertname",
    status: AlertStatus = "open",
    incident: IncidentRef = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    filter: Filter = [],  # noqa: B006
) -> list[schemas.AlertGroupCount]:
    """What an alert storm is made of: the most common values of a label among the alerts (open by
    default; of one incident, and matching `filter`, if asked), with how many alerts have each.
    Resolved or all alerts of every incident are counted among the newest 100,000 alerts; with a
    matcher other than an exact `name="value"`, among the 20,000 newest that may match."""
    wanted = parsed_filter(filter)
    async with rt.db.session() as session:
        incident_id = await _incident_id(session, incident)
        counted = await triage.counted_by(session, by, status, incident_id, limit, wanted)
    return [schemas.AlertGroupCount(value=value, count=n) for value, n in counted]


@router.post("/alerts/resolve", response_model=schemas.AlertsResolved)
async def resolve_alerts(body: schemas.AlertsResolve, who: Responder, rt: Rt) -> schemas.AlertsResolved:
    """Resolve alerts by hand (stale ones whose sender will never clear them, a removed host's): each
    incident's timeline says who; the incidents themselves are left as they are. A sender firing one of
    them again opens a new alert."""
    resolved = await triage.resolve(rt.db, rt.clock, rt.policy, body.ids, who.name)
    return schemas.AlertsResolved(resolved=resolved, skipped=sorted(set(body.ids) - set(resolved)))


@router.post("/silences", response_model=schemas.SilenceOut, status_code=201)
async def create_silence(body: schemas.SilenceCreate, who: Responder, rt: Rt) -> object:
    """Mute alerts whose labels match every matcher until `ends_at`; muted alerts are still recorded."""
    async with rt.db.transaction() as session:
        return await silences.create(
            session,
            rt.clock,
            matchers=[m.model_dump() for m in body.matchers],
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            comment=body.comment,
            actor=who.name,
            kind=body.kind,
        )


@router.get("/silences", response_model=list[schemas.SilenceOut])
async def list_silences(_: Viewer, rt: Rt, expired: bool = False) -> list[schemas.SilenceOut]:
    """Silences in force (and ended ones with `expired`), each with how many open alerts it mutes now."""
    async with rt.db.session() as session:
        rows = await silences.listing(session, rt.clock, expired)
        muting = await triage.muting(session)
    return [
        schemas.SilenceOut.model_validate(row).model_copy(
            update={"muting": muting.get(f"{row.kind}:{row.id}", 0)}
        )
        for row in rows
    ]


@router.delete("/silences/{silence_id}", response_model=schemas.SilenceOut, responses=responses(404))
async def expire_silence(
    silence_id: Annotated[int, Path(ge=1, le=2**31 - 1)], _: Responder, rt: Rt
) -> object:
    """End a silence now."""
    async with rt.db.transaction() as session:
        return await silences.expire(session, rt.clock, silence_id)
