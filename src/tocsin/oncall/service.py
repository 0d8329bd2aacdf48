"""Who is on call: overrides (the only table written here) and the schedule read against them.

The engine calls `team_for`, `resolve_page_targets`, `resolve_step` and `person` to page people.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.clock import Clock
from tocsin.core.durations import format_duration
from tocsin.core.errors import InvalidInput, NotFound
from tocsin.oncall import schedule
from tocsin.oncall.models import Override
from tocsin.oncall.schedule import TICK, Shift
from tocsin.oncall.schemas import LayerNow, RotationNow, TeamNow
from tocsin.policy.models import EscalationStep, Policy
from tocsin.policy.oncall import LAYERS, Person, Rotation, Team

MAX_OVERRIDE = timedelta(days=90)
LOOK_BACK = timedelta(weeks=5)  # to find when the current turn began
LOOK_AHEAD = timedelta(weeks=8)  # to find who is next
MAX_NOTE = 2000


def person(policy: Policy, name: str) -> Person | None:
    """The person called `name` in the policy, if any."""
    return next((p for p in policy.people if p.name == name), None)


def team_for(policy: Policy, services: list[str]) -> Team | None:
    """The first team listing one of the services, else the first team, else None."""
    wanted = set(services)
    found = next((t for t in policy.teams if wanted.intersection(t.services)), None)
    return found or (policy.teams[0] if policy.teams else None)


def _team(policy: Policy, name: str) -> Team:
    found = next((t for t in policy.teams if t.name == name), None)
    if found is None:
        known = ", ".join(t.name for t in policy.teams) or "none in the policy"
        raise InvalidInput(f'unknown team "{name}" (teams: {known})', field="team")
    return found


def _rotation(policy: Policy, name: str) -> Rotation:
    try:
        return schedule.find_rotation(policy, name)[1]
    except KeyError:
        known = ", ".join(r.name for t in policy.teams for r in t.rotations) or "none in the policy"
        raise InvalidInput(f'unknown rotation "{name}" (rotations: {known})', field="rotation") from None


def aware(at: datetime, field: str) -> datetime:
    """`at` when it carries a UTC offset; InvalidInput naming `field` when it is a naive time."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{field} needs a time zone offset (e.g. 2026-03-03T20:00:00-05:00)", field=field)
    return at


def handoff_text(handoff: timedelta) -> str:
    """`daily`, `weekly` or the duration, as a policy would write it."""
    return {timedelta(days=1): "daily", timedelta(days=7): "weekly"}.get(handoff) or format_duration(handoff)


# Overrides


async def overrides(
    session: AsyncSession, start: datetime, end: datetime, rotations: Iterable[str] | None = None
) -> list[Override]:
    """Overrides not deleted that overlap [start, end), oldest first (so a later one wins)."""
    query = select(Override).where(
        Override.deleted_at.is_(None), Override.starts_at < end, Override.ends_at > start
    )
    if rotations is not None:
        query = query.where(Override.rotation.in_(list(rotations)))
    rows = await session.scalars(query.order_by(Override.created_at, Override.id))
    return list(rows)


async def create_override(
    session: AsyncSession,
    clock: Clock,
    policy: Policy,
    actor: str,
    rotation: str,
    person: str,
    starts_at: datetime,
    ends_at: datetime,
    note: str = "",
) -> Override:
    """Record that `person` covers `rotation` from starts_at to ends_at; 422 naming the bad field."""
    _rotation(policy, rotation)
    if not any(p.name == person for p in policy.people):
        known = ", ".join(p.name for p in policy.people) or "none in the policy"
        raise InvalidInput(f'unknown person "{person}" (people: {known})', field="person")
    for field, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(
                f"{field} needs a time zone offset (e.g. 2026-03-03T20:00:00-05:00)", field=field
            )
    if ends_at <= starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    if ends_at - starts_at > MAX_OVERRIDE:
        raise InvalidInput("an override lasts at most 90 days; change the rotation instead", field="ends_at")
    if ends_at <= clock.now():
        raise InvalidInput("ends_at is in the past: the override would change nothing", field="ends_at")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note is too long (at most {MAX_NOTE} characters)", field="note")
    row = Override(
        rotation=rotation,
        person=person,
        starts_at=starts_at,
        ends_at=ends_at,
        note=note,
        created_by=actor,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return row


async def delete_override(session: AsyncSession, clock: Clock, override_id: int) -> Override:
    """Withdraw an override (kept, marked deleted); NotFound when there is none or it is gone."""
    row = await session.get(Override, override_id, with_for_update=True)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no override {override_id}", field="id")
    row.deleted_at = clock.now()
    await session.flush()
    return row


# Who is on call


def _now_and_next(
    policy: Policy, rotation: Rotation, at: datetime, listed: Sequence[Override]
) -> RotationNow:
    turns = schedule.shifts(policy, rotation.name, at - LOOK_BACK, at + LOOK_AHEAD, listed)
    current = next((s for s in turns if s.starts_at <= at < s.ends_at), None)
    later = [s for s in turns if s.starts_at > at]
    upcoming: Shift | None = next((s for s in later if current is None or s.person != current.person), None)
    holder = person(policy, current.person) if current else None
    return RotationNow(
        rotation=rotation.name,
        layer=rotation.layer,
        person=current.person if current else None,
        full_name=holder.display_name if holder else None,
        override=current.override if current else False,
        since=current.starts_at if current and current.starts_at > at - LOOK_BACK else None,
        until=_until(turns, current),
        next_person=upcoming.person if upcoming else None,
        next_at=upcoming.starts_at if upcoming else None,
    )


def _until(turns: list[Shift], current: Shift | None) -> datetime | None:
    """When the current person stops being on call (across back-to-back turns of their own)."""
    if current is None:
        return None
    end = current.ends_at
    for turn in turns:
        if turn.starts_at == end and turn.person == current.person:
            end = turn.ends_at
    return end


async def on_call_now(
    session: AsyncSession, policy: Policy, at: datetime, team: str | None = None
) -> list[TeamNow]:
    """Per team (or one team), per layer: each rotation's person on call at `at` and who is next."""
    teams = [_team(policy, team)] if team is not None else list(policy.teams)
    listed = await overrides(session, at - LOOK_BACK, at + LOOK_AHEAD)
    out: list[TeamNow] = []
    for t in teams:
        layers = [
            LayerNow(layer=layer, rotations=[_now_and_next(policy, r, at, listed) for r in t.layer(layer)])
            for layer in LAYERS
            if t.layer(layer)
        ]
        out.append(TeamNow(team=t.name, title=t.title or t.name, services=list(t.services), layers=layers))
    return out


async def _on_call_at(session: AsyncSession, policy: Policy, at: datetime) -> dict[str, str]:
    """rotation name -> the person on call in it at `at` (rotations with nobody are left out)."""
    listed = await overrides(session, at, at + TICK)
    found: dict[str, str] = {}
    for t in policy.teams:
        for r in t.rotations:
            holder = schedule.on_call(policy, r.name, at, listed)
            if holder is not None:
                found[r.name] = holder
    return found


def _add(out: list[tuple[str, str]], name: str, why: str) -> None:
    if all(name != seen for seen, _ in out):
        out.append((name, why))


async def resolve_page_targets(
    session: AsyncSession, policy: Policy, at: datetime, team: Team | None, targets: list[str]
) -> list[tuple[str, str]]:
    """(person, why) for a severity's `page` list (primary, backup, full_team, management), in order, once each."""
    holders = await _on_call_at(session, policy, at)
    out: list[tuple[str, str]] = []
    for target in targets:
        if target == "management":
            rotations = [r for t in _team_first(policy, team) for r in t.layer("management")]
        elif team is None:
            rotations = []
        elif target == "full_team":
            rotations = [r for layer in LAYERS for r in team.layer(layer)]
        else:
            rotations = team.layer(target) if target in LAYERS else []
        for r in rotations:
            if r.name in holders:
                _add(out, holders[r.name], f"{target}: on call for {r.name} ({r.layer})")
    return out


def _team_first(policy: Policy, team: Team | None) -> list[Team]:
    return sorted(policy.teams, key=lambda t: team is None or t.name != team.name)


async def resolve_step(
    session: AsyncSession, policy: Policy, at: datetime, step: EscalationStep, team: Team | None
) -> list[str]:
    """The people an escalation step pages at `at`: [] when nobody (and for a channel step)."""
    if step.channel is not None:
        return []
    if step.person is not None:
        return [step.person]
    holders = await _on_call_at(session, policy, at) if step.rotation or step.team else {}
    if step.rotation is not None:
        return [holders[step.rotation]] if step.rotation in holders else []
    if step.team is not None:
        named = next((t for t in policy.teams if t.name == step.team), None)
        out: list[str] = []
        for r in [*named.layer("primary"), *named.layer("backup")] if named else []:
            if r.name in holders and holders[r.name] not in out:
                out.append(holders[r.name])
        return out
    titled = [p.name for p in policy.people if step.role in p.titles]
    if team is not None:
        members = {m for r in team.rotations for m in r.members}
        ours = [name for name in titled if name in members]
        if ours:
            return ours  # the team's own Senior Engineer rather than every one in the company
    return titled


def team_gaps(
    policy: Policy, start: datetime, end: datetime, listed: Sequence[Override]
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each team's primary-layer gaps in [start, end)."""
    return {t.name: schedule.gaps(policy, t.name, start, end, listed) for t in policy.teams}


def rotation_gaps(
    policy: Policy, rotation: str, start: datetime, end: datetime, listed: Sequence[Override]
) -> list[tuple[datetime, datetime]]:
    """The times in [start, end) with nobody on call in one rotation."""
    turns = schedule.shifts(policy, rotation, start, end, listed)
    return schedule.uncovered(((s.starts_at, s.ends_at) for s in turns), start, end)
