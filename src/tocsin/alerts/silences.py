"""Silences and maintenance windows: label matchers that mute alerts (still recorded) until they expire."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.matchers import matches
from tocsin.alerts.models import Silence
from tocsin.core.clock import Clock
from tocsin.core.errors import InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class Active:
    """What muting needs of a silence in force: read on every ingest batch, so no ORM object."""

    id: int
    kind: str
    matchers: list[dict[str, Any]]


def muting(silences: list[Active], labels: dict[str, str]) -> Active | None:
    """The first silence whose matchers all match the labels."""
    for silence in silences:
        if all(matches(m, labels) for m in silence.matchers):
            return silence
    return None


_table: Table = Silence.__table__  # type: ignore[assignment]  # a mapped class's table is a Table
_NOW = bindparam("now", type_=_table.c.starts_at.type)
_ACTIVE = (
    select(_table.c.id, _table.c.kind, _table.c.matchers)
    .where(_table.c.starts_at <= _NOW, _table.c.ends_at > _NOW)
    .order_by(_table.c.id)
)


async def active(session: AsyncSession, now: datetime) -> list[Active]:
    rows = await session.execute(_ACTIVE, {"now": now})
    return [Active(id_, kind, matchers) for id_, kind, matchers in rows]


def check_matchers(matchers: list[dict[str, Any]]) -> None:
    if not matchers:
        raise InvalidInput("a silence needs at least one matcher", field="matchers")
    for i, m in enumerate(matchers):
        if m.get("is_regex"):
            try:
                re.compile(m["value"])
            except re.error as exc:
                raise InvalidInput(f"not a regular expression: {exc}", field=f"matchers.{i}.value") from None


async def create(
    session: AsyncSession,
    clock: Clock,
    *,
    matchers: list[dict[str, Any]],
    starts_at: datetime | None,
    ends_at: datetime,
    comment: str,
    actor: str,
    kind: str = "silence",
) -> Silence:
    check_matchers(matchers)
    now = clock.now()
    start = starts_at or now
    if ends_at <= start:
        raise InvalidInput("must be after starts_at (and in the future)", field="ends_at")
    silence = Silence(
        matchers=matchers,
        starts_at=start,
        ends_at=ends_at,
        kind=kind,
        comment=comment,
        created_by=actor,
        created_at=now,
    )
    session.add(silence)
    await session.flush()
    return silence


async def expire(session: AsyncSession, clock: Clock, silence_id: int) -> Silence:
    silence = await session.get(Silence, silence_id)
    if silence is None:
        raise NotFound(f"no silence {silence_id}", field="id")
    silence.ends_at = min(silence.ends_at, clock.now())
    return silence


async def listing(session: AsyncSession, clock: Clock, include_expired: bool) -> list[Silence]:
    query = select(Silence).order_by(Silence.id.desc()).limit(500)
    if not include_expired:
        query = query.where(Silence.ends_at > clock.now())
    return list(await session.scalars(query))
