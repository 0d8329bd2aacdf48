"""Who is on call when: rotations, active hours and overrides as pure functions of the policy and time.

Hand-offs are wall-clock times in the policy's time zone: shift k starts at `start + k * handoff` as a
local date and time, so a daily 09:00 hand-off stays at 09:00 across daylight-saving changes (and a
12h rotation keeps 09:00/21:00). Two rules make every local time an instant:

- a local time that happens twice (the hour repeated when clocks go back) is its first occurrence;
- a local time that never happens (the hour skipped when clocks go forward) is the instant the clocks
  jump, so a 02:30 hand-off on the spring-forward night happens at 03:00 new time.

Both keep hand-offs in order, so shifts never overlap; a shift the jump reduces to nothing is dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from tocsin.policy.models import Policy
from tocsin.policy.oncall import Rotation, Team

TICK = timedelta(microseconds=1)


class OverrideLike(Protocol):
    """What the schedule reads of an override (the oncall_overrides row, or anything shaped like it)."""

    @property
    def rotation(self) -> str: ...
    @property
    def person(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...


@dataclass(frozen=True)
class Shift:
    """`person` on call for `rotation` from `starts_at` to `ends_at` (UTC); override: taken by an override."""

    rotation: str
    person: str
    starts_at: datetime
    ends_at: datetime
    override: bool = False


Span = tuple[datetime, datetime]


def find_rotation(policy: Policy, name: str) -> tuple[Team, Rotation]:
    """The rotation called `name` and its team; KeyError when there is none."""
    for team in policy.teams:
        for rotation in team.rotations:
            if rotation.name == name:
                return team, rotation
    raise KeyError(name)


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """The instant of a naive local time in tz, by the module's rules for repeated and skipped times."""
    first = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local:
        return first  # exists (fold=0 is the first of two occurrences)
    # Skipped: the jump lies between the reading with the offset after it and the one before it.
    low = int(local.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(first.timestamp())
    after = first.astimezone(tz).utcoffset()
    while high - low > 1:  # transitions fall on whole seconds
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} is a naive datetime; pass a timezone-aware instant")
    return at.astimezone(UTC)


def _boundary(rotation: Rotation, k: int, tz: ZoneInfo) -> datetime:
    return to_utc(rotation.start + k * rotation.handoff, tz)


def _index_at(rotation: Rotation, at: datetime, tz: ZoneInfo) -> int:
    """The shift number k with boundary(k) <= at < boundary(k+1); -1 before the first shift."""
    if at < _boundary(rotation, 0, tz):
        return -1
    local = at.astimezone(tz).replace(tzinfo=None)
    k = max(0, (local - rotation.start) // rotation.handoff)
    while k > 0 and _boundary(rotation, k, tz) > at:
        k -= 1
    while _boundary(rotation, k + 1, tz) <= at:
        k += 1
    return k


def _base_shifts(rotation: Rotation, start: datetime, end: datetime, tz: ZoneInfo) -> list[Shift]:
    """The rotation's turns (ignoring active hours and overrides), clipped to [start, end)."""
    out: list[Shift] = []
    k = max(0, _index_at(rotation, start, tz))
    begins = _boundary(rotation, k, tz)
    while begins < end:
        ends = _boundary(rotation, k + 1, tz)
        lo, hi = max(begins, start), min(ends, end)
        if lo < hi:
            out.append(Shift(rotation.name, rotation.members[k % len(rotation.members)], lo, hi))
        k, begins = k + 1, ends
    return out


def active_spans(rotation: Rotation, start: datetime, end: datetime, tz: ZoneInfo) -> list[Span]:
    """When the rotation's `active` hours are on, within [start, end); all of it without a restriction."""
    if rotation.active is None:
        return [(start, end)] if start < end else []
    hours = rotation.active
    spans: list[Span] = []
    day = start.astimezone(tz).date() - timedelta(days=1)  # yesterday's window may wrap into today
    last = end.astimezone(tz).date()
    while day <= last:
        if day.weekday() in hours.weekday_numbers:
            local = datetime.combine(day, hours.starts)
            lo, hi = max(to_utc(local, tz), start), min(to_utc(local + hours.length, tz), end)
            if lo < hi:
                if spans and spans[-1][1] >= lo:
                    spans[-1] = (spans[-1][0], max(spans[-1][1], hi))
                else:
                    spans.append((lo, hi))
        day += timedelta(days=1)
    return spans


def _restrict(shifts: list[Shift], spans: list[Span]) -> list[Shift]:
    out: list[Shift] = []
    for shift in shifts:
        for lo, hi in spans:
            a, b = max(shift.starts_at, lo), min(shift.ends_at, hi)
            if a < b:
                out.append(Shift(shift.rotation, shift.person, a, b))
    return out


def _apply_overrides(
    base: list[Shift], overrides: Sequence[OverrideLike], start: datetime, end: datetime
) -> list[Shift]:
    """Overrides win over the turns they cover; a later override in the list wins over an earlier one."""
    if not overrides:
        return base
    pieces: list[tuple[datetime, datetime, int]] = []  # (from, to, index): index -1 is the base schedule
    cuts = {start, end}
    for o in overrides:
        cuts.update(t for t in (_utc(o.starts_at), _utc(o.ends_at)) if start < t < end)
    for shift in base:
        cuts.update((shift.starts_at, shift.ends_at))
    points = sorted(cuts)
    out: list[Shift] = []
    rotation = base[0].rotation if base else overrides[0].rotation
    b = 0
    for lo, hi in itertools.pairwise(points):
        if lo >= hi:
            continue
        winner = None
        for index in range(len(overrides) - 1, -1, -1):
            o = overrides[index]
            if _utc(o.starts_at) <= lo and hi <= _utc(o.ends_at):
                winner = index
                break
        while b < len(base) and base[b].ends_at <= lo:
            b += 1
        if winner is not None:
            piece = Shift(rotation, overrides[winner].person, lo, hi, override=True)
            key = winner
        elif b < len(base) and base[b].starts_at <= lo:
            piece = Shift(rotation, base[b].person, lo, hi)
            key = -1 - b
        else:
            continue
        if out and pieces[-1][2] == key and out[-1].ends_at == lo:
            out[-1] = Shift(rotation, piece.person, out[-1].starts_at, hi, piece.override)
            pieces[-1] = (pieces[-1][0], hi, key)
        else:
            out.append(piece)
            pieces.append((lo, hi, key))
    return out


def _rotation_overrides(name: str, overrides: Iterable[OverrideLike]) -> list[OverrideLike]:
    return [o for o in overrides if o.rotation == name]


def shifts(
    policy: Policy, rotation_name: str, start: datetime, end: datetime, overrides: Iterable[OverrideLike] = ()
) -> list[Shift]:
    """Who is on call for the rotation from start to end (UTC), in order, overrides splitting turns.

    Overrides are applied in the order given (later wins where two overlap); pass them oldest first.
    """
    _, rotation = find_rotation(policy, rotation_name)
    start, end = _utc(start), _utc(end)
    if start >= end:
        return []
    tz = policy.tz
    base = _restrict(_base_shifts(rotation, start, end, tz), active_spans(rotation, start, end, tz))
    return _apply_overrides(base, _rotation_overrides(rotation_name, overrides), start, end)


def on_call(
    policy: Policy, rotation_name: str, at: datetime, overrides: Iterable[OverrideLike] = ()
) -> str | None:
    """The person on call for the rotation at `at`; None outside its active hours or before its start."""
    now = shifts(policy, rotation_name, at, _utc(at) + TICK, overrides)
    return now[0].person if now else None


def covered(spans: Iterable[Span]) -> list[Span]:
    """The union of spans, merged and in order."""
    out: list[Span] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def gaps(
    policy: Policy, team_name: str, start: datetime, end: datetime, overrides: Iterable[OverrideLike] = ()
) -> list[Span]:
    """The times in [start, end) when nobody is on call in the team's primary layer."""
    team = next((t for t in policy.teams if t.name == team_name), None)
    if team is None:
        raise KeyError(team_name)
    start, end = _utc(start), _utc(end)
    listed = list(overrides)
    turns = [s for r in team.layer("primary") for s in shifts(policy, r.name, start, end, listed)]
    return uncovered(((s.starts_at, s.ends_at) for s in turns), start, end)


def uncovered(spans: Iterable[Span], start: datetime, end: datetime) -> list[Span]:
    """The parts of [start, end) that no span covers."""
    out: list[Span] = []
    cursor = start
    for lo, hi in covered(spans):
        if cursor < lo:
            out.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < end:
        out.append((cursor, end))
    return out


GAP_HORIZON = timedelta(weeks=4)


def gap_warnings(policy: Policy, now: datetime, horizon: timedelta = GAP_HORIZON) -> list[str]:
    """Warnings for the policy: each team's primary-layer gaps over the next 4 weeks, and unheld titles."""
    warnings: list[str] = []
    tz = policy.tz
    for team in policy.teams:
        found = gaps(policy, team.name, now, _utc(now) + horizon)
        if not team.layer("primary"):
            warnings.append(f'team "{team.name}" has no primary rotation: nobody is paged as its primary')
        elif found:
            total = sum((hi - lo for lo, hi in found), timedelta(0))
            first = found[0][0].astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
            warnings.append(
                f'team "{team.name}" has {len(found)} gap{"s" if len(found) != 1 else ""} in its primary '
                f"on-call over the next {horizon.days // 7} weeks ({_hours(total)} with nobody on call; "
                f"first from {first})"
            )
    if policy.people:
        titles = {title for person in policy.people for title in person.titles}
        for chain_name, chain in policy.escalation_chains.items():
            for index, step in enumerate(chain.steps, start=1):
                untargeted = not (step.person or step.rotation or step.team or step.channel)
                if untargeted and step.role not in titles:
                    warnings.append(
                        f'escalation chain "{chain_name}" step {index} ({step.role}): nobody has the title '
                        f'"{step.role}", so the step will be skipped'
                    )
    return warnings


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.0f}h" if hours >= 1 else f"{span.total_seconds() / 60:.0f}m"
