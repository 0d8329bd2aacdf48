"""State of heartbeats and error-rate detectors: kept in the database so a restart forgets nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Double, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base


class HeartbeatState(Base):
    """The last ping of one policy heartbeat and when the next one is due."""

    __tablename__ = "heartbeat_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(8), default="new")  # new | up | down
    last_ping_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]  # last ping + interval; the alert waits a grace period more
    down_since: Mapped[datetime | None]
    pings: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class ErrorRateState(Base):
    """One error-rate detector: its learned baseline, spike state, and the sample being gathered."""

    __tablename__ = "error_rate_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    baseline: Mapped[float | None] = mapped_column(Double)
    samples: Mapped[int] = mapped_column(default=0)
    above: Mapped[int] = mapped_column(default=0)
    elevated: Mapped[int] = mapped_column(default=0)
    below: Mapped[int] = mapped_column(default=0)
    raised: Mapped[bool] = mapped_column(default=False)
    raised_at: Mapped[datetime | None]
    last_value: Mapped[float | None] = mapped_column(Double)
    last_sample_at: Mapped[datetime | None]
    next_sample_at: Mapped[datetime | None]  # poll: next poll; webhook: end of the counting window
    window_count: Mapped[int] = mapped_column(default=0)  # webhook: events in the open window
    counter_total: Mapped[float | None] = mapped_column(Double)  # poll counter: the last running total
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]


State = TypeVar("State", HeartbeatState, ErrorRateState)


async def locked_rows(
    session: AsyncSession, model: type[State], names: Iterable[str], now: datetime
) -> dict[str, State]:
    """The state rows of `names`, created if missing and locked until commit (PostgreSQL)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Concurrent first pings may both create a row: the loser's insert does nothing.
    await session.execute(
        insert(model)
        .values([{"name": name, "created_at": now} for name in wanted])
        .on_conflict_do_nothing(index_elements=["name"])
    )
    rows = await session.scalars(
        select(model).where(model.name.in_(wanted)).order_by(model.name).with_for_update()
    )
    return {row.name: row for row in rows}
