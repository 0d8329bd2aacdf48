"""Scheduling timers: rows with a `due_at`, written in the transaction of the change that causes them.

`schedule` is an upsert on (kind, key): scheduling again moves the one timer, so callers can re-plan
an incident's timers after every change without first asking what exists. A timer due now is fired
before its transaction commits when the process runs the engine (`Worker.fire_due_now`), and wakes
the workers when it commits otherwise: this process's through the bus, other processes' through
PostgreSQL's NOTIFY.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.db.engine import publish_after_commit
from tocsin.engine.models import Timer

TOPIC = "timers"  # the in-process bus topic, and the PostgreSQL NOTIFY channel (prefixed)
CHANNEL = "tocsin_timers"
DUE_NOW = "tocsin.timers.due_now"  # session.info: (kind, key) of the timers this transaction made due


@dataclass(frozen=True)
class Plan:
    """One timer to schedule: see `schedule`."""

    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    incident_id: int | None = None


async def schedule(
    session: AsyncSession,
    now: datetime,
    kind: str,
    key: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    *,
    incident_id: int | None = None,
) -> None:
    """Have the handler of `kind` run at `due_at`; replaces the timer (pending or fired) with the same kind and key."""
    await schedule_many(session, now, [Plan(kind, key, due_at, payload or {}, incident_id)])


async def schedule_many(session: AsyncSession, now: datetime, plans: Sequence[Plan]) -> None:
    """Schedule several timers in one statement."""
    if not plans:
        return
    rows = [
        {
            "kind": p.kind,
            "key": p.key,
            "due_at": p.due_at,
            "payload": p.payload,
            "incident_id": p.incident_id,
            "created_at": now,
            "attempts": 0,
            "last_error": None,
            "fired_at": None,
        }
        for p in plans
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Timer).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Timer.kind, Timer.key],
        set_={
            "due_at": stmt.excluded.due_at,
            "payload": stmt.excluded.payload,
            "attempts": 0,
            "last_error": None,
            "fired_at": None,
        },
    )
    await session.execute(stmt)
    due = {(p.kind, p.key) for p in plans if p.due_at <= now}
    if due:
        session.info.setdefault(DUE_NOW, set()).update(due)
        await wake(session)


async def wake(session: AsyncSession) -> None:
    """Wake the workers when this transaction commits."""
    publish_after_commit(session, TOPIC)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {CHANNEL}"))


async def cancel(session: AsyncSession, kind: str, key: str) -> None:
    """Forget the timer (pending or fired)."""
    await session.execute(delete(Timer).where(Timer.kind == kind, Timer.key == key))


async def cancel_for(session: AsyncSession, incident_id: int, kinds: Iterable[str]) -> None:
    """Cancel the incident's pending timers of these kinds."""
    await session.execute(
        delete(Timer).where(
            Timer.incident_id == incident_id, Timer.kind.in_(list(kinds)), Timer.fired_at.is_(None)
        )
    )


async def of_incident(session: AsyncSession, incident_id: int) -> list[Timer]:
    """The incident's timers, pending and fired, soonest first."""
    query = select(Timer).where(Timer.incident_id == incident_id).order_by(Timer.due_at, Timer.id)
    return list(await session.scalars(query))


async def pending(session: AsyncSession, incident_id: int | None = None) -> list[Timer]:
    """Timers not yet fired, soonest first; those of one incident when given."""
    query = select(Timer).where(Timer.fired_at.is_(None)).order_by(Timer.due_at, Timer.id)
    if incident_id is not None:
        query = query.where(Timer.incident_id == incident_id)
    return list(await session.scalars(query))
