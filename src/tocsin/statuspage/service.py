"""The only code that writes component statuses and incident status updates, and bumps the page version.

Maintenance lives in maintenance.py and subscribers in subscribers.py; all three end their changes with
`bump`, which tells every process's render cache (see cache.py) that the public page is stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.clock import Clock
from tocsin.core.errors import Conflict, InvalidInput
from tocsin.core.ids import incident_ref
from tocsin.incidents import service as incidents
from tocsin.incidents.models import Incident
from tocsin.incidents.timeline import EventKind
from tocsin.policy.models import Policy
from tocsin.statuspage import subscribers
from tocsin.statuspage.links import Links
from tocsin.statuspage.models import ComponentChange, PageVersion, StatusComponent, StatusUpdate
from tocsin.statuspage.schemas import Draft, StatusUpdateCreate
from tocsin.statuspage.vocab import ComponentStatus, UpdateStatus, default_component_status, public_status

VERSION = "page"


async def bump(session: AsyncSession) -> None:
    """Mark the public page changed (every process re-renders within a second of the commit)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(PageVersion).values(name=VERSION, value=1)
    statement = statement.on_conflict_do_update(
        index_elements=["name"], set_={"value": PageVersion.value + 1}
    )
    await session.execute(statement)


async def version(session: AsyncSession) -> int:
    """The page version: one indexed row, cheap enough to read every second."""
    value = await session.scalar(select(PageVersion.value).where(PageVersion.name == VERSION))
    return int(value or 0)


def component_titles(policy: Policy) -> dict[str, str]:
    return {c.name: c.title for s in policy.services for c in s.components}


def check_components(policy: Policy, names: list[str] | Mapping[str, object], field: str) -> list[str]:
    """The names, each a component of the policy; InvalidInput naming the first unknown one."""
    known = policy.component_names
    for name in names:
        if name not in known:
            raise InvalidInput(
                f"unknown component {name!r}; known: {', '.join(sorted(known))}", field=f"{field}.{name}"
            )
    return list(names)


async def current(session: AsyncSession) -> dict[str, StatusComponent]:
    """Every component row by name (a component never changed has none: it is operational)."""
    return {row.name: row for row in await session.scalars(select(StatusComponent))}


async def set_status(
    session: AsyncSession,
    policy: Policy,
    now: datetime,
    name: str,
    new: ComponentStatus,
    *,
    rows: dict[str, StatusComponent],
    incident_id: int | None = None,
    maintenance_id: int | None = None,
) -> dict[str, Any] | None:
    """Give a component a status; the Statuspage `affected_components` entry when it changed."""
    row = rows.get(name)
    if row is None:
        # Tracking starts at the first change; the uptime bars count from here.
        row = StatusComponent(
            name=name, status=ComponentStatus.operational.value, created_at=now, updated_at=now
        )
        session.add(row)
        rows[name] = row
    old = ComponentStatus(row.status)
    if old is new:
        return None
    row.status, row.updated_at = new.value, now
    session.add(
        ComponentChange(
            component=name,
            old_status=old.value,
            new_status=new.value,
            at=now,
            incident_id=incident_id,
            maintenance_id=maintenance_id,
        )
    )
    title = component_titles(policy).get(name, name)
    return {"code": name, "name": title, "old_status": old.value, "new_status": new.value}


async def updates_of(session: AsyncSession, incident_id: int) -> list[StatusUpdate]:
    """The incident's public updates, oldest first."""
    query = select(StatusUpdate).where(StatusUpdate.incident_id == incident_id).order_by(StatusUpdate.id)
    return list(await session.scalars(query))


def fill_template(policy: Policy, incident: Incident, status: UpdateStatus, now: datetime) -> str:
    """The policy's initial (or, for `resolved`, resolution) template with the incident's fields."""
    name = "status_resolution" if status is UpdateStatus.resolved else "status_initial"
    brief = incident.description.strip().splitlines()[0] if incident.description.strip() else ""
    if not brief or len(brief) > 200:
        brief = incident.title
    return policy.templates.render(
        name,
        organization=policy.organization,
        title=incident.title,
        description=brief[:1].lower() + brief[1:] if brief[1:2].islower() else brief,
        severity=incident.severity,
        posted_at=now.astimezone(policy.tz).strftime("%Y-%m-%d %H:%M %Z"),
    ).strip()


def _suggested_components(
    policy: Policy, incident: Incident, status: UpdateStatus
) -> dict[str, ComponentStatus]:
    if status in (UpdateStatus.resolved, UpdateStatus.postmortem):
        return dict.fromkeys(incident.components, ComponentStatus.operational)
    rank = policy.severities[incident.severity].rank if incident.severity in policy.severities else 3
    return dict.fromkeys(incident.components, default_component_status(rank))


async def draft(session: AsyncSession, clock: Clock, policy: Policy, incident: Incident) -> Draft:
    """The next update as the form offers it: status, filled-in template, component statuses."""
    status = public_status(incident.status)
    posted = await updates_of(session, incident.id)
    if posted and status is UpdateStatus.investigating and posted[-1].status != UpdateStatus.resolved.value:
        status = UpdateStatus(posted[-1].status)
    return Draft(
        status=status,
        body=fill_template(policy, incident, status, clock.now()),
        components=_suggested_components(policy, incident, status),
        first=not posted,
    )


def check_postable(policy: Policy, incident: Incident) -> None:
    """Conflict unless the incident may be shown publicly (customer-facing and not closed)."""
    ref = incident_ref(incident.id)
    if not incident.customer_facing:
        raise Conflict(
            f"{ref} is internal (not customer-facing): internal incidents never appear on the status page",
            field="customer_facing",
        )
    if incident.status == "closed":
        raise Conflict(f"{ref} is closed; reopen it to post a status update", field="status")


async def post_update(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    links: Links,
    incident: Incident,
    actor: str,
    data: StatusUpdateCreate,
) -> StatusUpdate:
    """Publish an update: component statuses, the timeline, the status-page deadline, subscribers.

    The caller holds the incident's row (incidents.service.get(..., for_update=True)).
    """
    check_postable(policy, incident)
    now = clock.now()
    status = data.status or public_status(incident.status)
    body = data.body.strip() or fill_template(policy, incident, status, now)
    wanted = (
        dict(data.components)
        if data.components is not None
        else _suggested_components(policy, incident, status)
    )
    check_components(policy, wanted, "components")
    rows = await current(session)
    affected = []
    for name, new in wanted.items():
        change = await set_status(session, policy, now, name, new, rows=rows, incident_id=incident.id)
        if change is not None:
            affected.append(change)
    update = StatusUpdate(
        incident_id=incident.id,
        status=status.value,
        body=body,
        affected=affected,
        created_by=actor,
        created_at=now,
    )
    session.add(update)
    await session.flush()
    first = incident.status_page_updated_at is None
    if first:
        incident.status_page_updated_at = now  # the status-page deadline is met
    await incidents.record(
        session,
        clock,
        incident,
        EventKind.status_update,
        actor,
        {"update": update.id, "status": status.value, "text": body, "components": affected, "first": first},
    )
    touched = sorted({*incident.components, *wanted})
    await subscribers.fan_out(
        session, now, policy, links, subject=incident.title, update=update, components=touched
    )
    await bump(session)
    return update


async def track(session: AsyncSession, policy: Policy, now: datetime) -> int:
    """Start the history of every policy component that has none (operational from now); how many."""
    rows = await current(session)
    added = 0
    for name in sorted(policy.component_names - set(rows)):
        session.add(
            StatusComponent(
                name=name, status=ComponentStatus.operational.value, created_at=now, updated_at=now
            )
        )
        added += 1
    if added:
        await bump(session)
    return added
