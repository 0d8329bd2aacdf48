"""The only code that writes maintenance: maintenance mode on and off, scheduled windows, their clock.

A window holds a silence (kind `maintenance`) matching the `component` label of its components, so their
alerts are recorded but muted for exactly the window; the components show `under_maintenance` while it
runs and get their earlier status back after.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts import silences
from tocsin.core.clock import Clock
from tocsin.core.errors import Conflict, InvalidInput, NotFound
from tocsin.policy.models import Policy
from tocsin.statuspage import service, subscribers
from tocsin.statuspage.links import Links
from tocsin.statuspage.models import Maintenance, StatusUpdate
from tocsin.statuspage.schemas import MaintenanceCreate
from tocsin.statuspage.vocab import OPEN_MAINTENANCE, ComponentStatus, MaintenanceStatus

MODE_SILENCE = timedelta(days=365)  # maintenance mode without an end mutes until switched off
RUNNING = (MaintenanceStatus.in_progress.value, MaintenanceStatus.verifying.value)


def _all_or(policy: Policy, components: list[str]) -> list[str]:
    names = [c.name for s in policy.services for c in s.components]
    return service.check_components(policy, components, "components") if components else names


def _matchers(components: list[str]) -> list[dict[str, object]]:
    pattern = "|".join(components)  # component names are slugs: nothing to escape
    return [{"name": "component", "value": pattern, "is_regex": True, "is_equal": True}]


async def _post(
    session: AsyncSession,
    now: datetime,
    policy: Policy,
    links: Links,
    row: Maintenance,
    body: str,
    affected: list[dict[str, str]],
    actor: str,
) -> StatusUpdate:
    update = StatusUpdate(
        maintenance_id=row.id,
        status=row.status,
        body=body,
        affected=affected,
        created_by=actor,
        created_at=now,
    )
    session.add(update)
    row.updated_at = now
    await session.flush()
    await subscribers.fan_out(
        session, now, policy, links, subject=row.title, update=update, components=list(row.components)
    )
    await service.bump(session)
    return update


async def _begin(
    session: AsyncSession, now: datetime, policy: Policy, row: Maintenance
) -> list[dict[str, str]]:
    rows = await service.current(session)
    previous, affected = {}, []
    for name in row.components:
        before = ComponentStatus(rows[name].status) if name in rows else ComponentStatus.operational
        previous[name] = before.value
        change = await service.set_status(
            session, policy, now, name, ComponentStatus.under_maintenance, rows=rows, maintenance_id=row.id
        )
        if change:
            affected.append(change)
    row.previous = previous
    row.status, row.started_at = MaintenanceStatus.in_progress.value, now
    return affected


async def _still_covered(session: AsyncSession, row: Maintenance) -> set[str]:
    """Components another running window also holds under maintenance."""
    others = await session.scalars(
        select(Maintenance).where(Maintenance.status.in_(RUNNING), Maintenance.id != row.id)
    )
    return {name for other in others for name in other.components}


async def _end(session: AsyncSession, clock: Clock, policy: Policy, row: Maintenance) -> list[dict[str, str]]:
    now = clock.now()
    rows = await service.current(session)
    covered = await _still_covered(session, row)
    affected = []
    for name in row.components:
        if (
            name in covered
            or name not in rows
            or rows[name].status != ComponentStatus.under_maintenance.value
        ):
            continue  # someone set another status meanwhile, or another window still runs: leave it
        before = ComponentStatus(row.previous.get(name, ComponentStatus.operational.value))
        if before is ComponentStatus.under_maintenance:
            before = ComponentStatus.operational
        change = await service.set_status(
            session, policy, now, name, before, rows=rows, maintenance_id=row.id
        )
        if change:
            affected.append(change)
    if row.silence_id is not None:
        await silences.expire(session, clock, row.silence_id)
    row.status, row.completed_at = MaintenanceStatus.completed.value, now
    return affected


async def mode_on(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    links: Links,
    actor: str,
    *,
    components: list[str],
    title: str = "",
    body: str = "",
    until: datetime | None = None,
) -> Maintenance:
    """Maintenance mode now, for some components or all: banner, under_maintenance, alerts muted."""
    now = clock.now()
    names = _all_or(policy, components)
    if until is not None and until <= now:
        raise InvalidInput("must be in the future", field="until")
    running = await session.scalars(select(Maintenance).where(Maintenance.status.in_(RUNNING)))
    busy = sorted({n for m in running if m.mode for n in m.components} & set(names))
    if busy:
        raise Conflict(f"maintenance mode is already on for {', '.join(busy)}", field="components")
    silence = await silences.create(
        session,
        clock,
        matchers=_matchers(names),
        starts_at=now,
        ends_at=until or now + MODE_SILENCE,
        comment=f"maintenance mode: {title or 'maintenance'}",
        actor=actor,
        kind="maintenance",
    )
    row = Maintenance(
        title=title or "Maintenance in progress",
        body=body,
        components=names,
        status=MaintenanceStatus.in_progress.value,
        mode=True,
        scheduled_for=now,
        scheduled_until=until,
        silence_id=silence.id,
        previous={},
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    affected = await _begin(session, now, policy, row)
    await _post(session, now, policy, links, row, body or "We are carrying out maintenance.", affected, actor)
    return row


async def mode_off(
    session: AsyncSession, clock: Clock, policy: Policy, links: Links, actor: str, *, components: list[str]
) -> list[Maintenance]:
    """End every running maintenance that holds any of the components (none given: every one)."""
    wanted = set(_all_or(policy, components))
    running = list(
        await session.scalars(select(Maintenance).where(Maintenance.status.in_(RUNNING)).with_for_update())
    )
    ending = [m for m in running if wanted & set(m.components)]
    if not ending:
        raise Conflict("maintenance mode is not on for those components", field="components")
    for row in ending:
        affected = await _end(session, clock, policy, row)
        await _post(session, clock.now(), policy, links, row, "The maintenance is complete.", affected, actor)
    return ending


async def schedule(
    session: AsyncSession, clock: Clock, policy: Policy, links: Links, actor: str, data: MaintenanceCreate
) -> Maintenance:
    """A window ahead of time: announced now, reminded before, started and completed by the clock."""
    now = clock.now()
    names = _all_or(policy, data.components)
    if data.scheduled_until <= data.scheduled_for:
        raise InvalidInput("must be after scheduled_for", field="scheduled_until")
    if data.scheduled_until <= now:
        raise InvalidInput("must be in the future", field="scheduled_until")
    remind = (
        timedelta(minutes=data.remind_before)
        if data.remind_before is not None
        else policy.status_page.maintenance_reminder
    )
    silence = await silences.create(
        session,
        clock,
        matchers=_matchers(names),
        starts_at=max(data.scheduled_for, now),
        ends_at=data.scheduled_until,
        comment=f"scheduled maintenance: {data.title}",
        actor=actor,
        kind="maintenance",
    )
    remind_at = data.scheduled_for - remind
    row = Maintenance(
        title=data.title,
        body=data.body,
        components=names,
        status=MaintenanceStatus.scheduled.value,
        mode=False,
        scheduled_for=data.scheduled_for,
        scheduled_until=data.scheduled_until,
        remind_at=remind_at if remind and remind_at > now else None,
        silence_id=silence.id,
        previous={},
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    local = policy.tz
    when = (
        f"{data.scheduled_for.astimezone(local):%Y-%m-%d %H:%M} to "
        f"{data.scheduled_until.astimezone(local):%Y-%m-%d %H:%M %Z}"
    )
    await _post(
        session, now, policy, links, row, data.body or f"Scheduled maintenance from {when}.", [], actor
    )
    return row


async def cancel(
    session: AsyncSession, clock: Clock, policy: Policy, links: Links, actor: str, maintenance_id: int
) -> Maintenance:
    row = await get(session, maintenance_id, for_update=True)
    if row.status != MaintenanceStatus.scheduled.value:
        raise Conflict(
            f"maintenance {maintenance_id} is {row.status}; only a scheduled one is cancelled", field="status"
        )
    row.status = MaintenanceStatus.cancelled.value
    if row.silence_id is not None:
        await silences.expire(session, clock, row.silence_id)
    await _post(session, clock.now(), policy, links, row, "This maintenance has been cancelled.", [], actor)
    return row


async def get(session: AsyncSession, maintenance_id: int, *, for_update: bool = False) -> Maintenance:
    row = await session.get(Maintenance, maintenance_id, with_for_update=for_update)
    if row is None:
        raise NotFound(f"no maintenance {maintenance_id}", field="id")
    return row


async def listing(session: AsyncSession, *, open_only: bool = False, limit: int = 200) -> list[Maintenance]:
    query = select(Maintenance).order_by(Maintenance.scheduled_for.desc()).limit(limit)
    if open_only:
        query = query.where(Maintenance.status.in_([s.value for s in OPEN_MAINTENANCE]))
    return list(await session.scalars(query))


async def tick(session: AsyncSession, clock: Clock, policy: Policy, links: Links) -> int:
    """Send due reminders, start due windows, complete ended ones; how many changed."""
    now = clock.now()
    changed = 0
    due = await session.scalars(
        select(Maintenance)
        .where(Maintenance.status.in_([s.value for s in OPEN_MAINTENANCE]))
        .order_by(Maintenance.id)
        .with_for_update()
    )
    for row in list(due):
        if row.status == MaintenanceStatus.scheduled.value:
            if row.scheduled_for <= now:
                affected = await _begin(session, now, policy, row)
                await _post(
                    session,
                    now,
                    policy,
                    links,
                    row,
                    "The scheduled maintenance has begun.",
                    affected,
                    "tocsin",
                )
                changed += 1
            elif row.remind_at is not None and row.reminded_at is None and row.remind_at <= now:
                row.reminded_at = now
                starts = row.scheduled_for.astimezone(policy.tz)
                await _post(
                    session,
                    now,
                    policy,
                    links,
                    row,
                    f"Reminder: maintenance begins at {starts:%Y-%m-%d %H:%M %Z}.",
                    [],
                    "tocsin",
                )
                changed += 1
        if row.status in RUNNING and row.scheduled_until is not None and row.scheduled_until <= now:
            affected = await _end(session, clock, policy, row)
            await _post(session, now, policy, links, row, "The maintenance is complete.", affected, "tocsin")
            changed += 1
    return changed
