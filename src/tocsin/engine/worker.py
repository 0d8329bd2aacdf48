"""The engine's worker: claims due timers and runs their handlers, each exactly once.

A batch of due timers is claimed in one transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
workers in other processes take other timers); each timer is deleted and its handler run inside a
savepoint of that transaction. The handler's writes (pages, outbox rows, timeline entries, the next
timer) and the timer's `fired_at` commit together or not at all: a worker killed mid-batch leaves every
timer of the batch pending for the next worker, and none of them half-done. A handler that fails is
retried with backoff and its error kept on the timer row.

Overdue timers (after a restart or hours of downtime) fire once: a repeating handler schedules its
next run from the time it actually ran, and `Firing.late` tells it how late it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.bus import Bus
from tocsin.core.clock import Clock
from tocsin.db.engine import Database, transient
from tocsin.engine.models import Timer
from tocsin.engine.timers import CHANNEL, DUE_NOW, TOPIC

log = logging.getLogger("tocsin.engine")

MAX_WAIT = 5.0  # seconds a worker sleeps at most without a wake-up (a timer may come due meanwhile)
INLINE_ROUNDS = 5  # timers due at once that fire inline may make more due: at most this many rounds
BATCH_ATTEMPTS = 4  # runs of a batch that keeps meeting another worker's transaction (`Worker._batch`)


@dataclass(frozen=True)
class Firing:
    """When a timer actually fired, and how long after it was due."""

    now: datetime
    late: timedelta


Handler = Callable[[AsyncSession, Timer, Firing], Awaitable[None]]


def backoff(attempts: int) -> timedelta:
    """Retry delay after the n-th failure: 5 s, 10 s, 20 s ... at most 10 minutes."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 600))


class Worker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        handlers: Mapping[str, Handler],
        *,
        batch: int = 100,
        inline: Collection[str] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.handlers = handlers
        self.inline = inline  # the kinds `fire_due_now` fires
        self.batch = batch
        self.fired = 0
        self.failed = 0

    async def tick(self, rounds: int = 20) -> int:
        """Fire every due timer (in batches, at most `rounds` of them); the number fired."""
        total = 0
        for _ in range(rounds):
            claimed = await self._batch()
            total += claimed
            if claimed < self.batch:
                break
        return total

    async def _batch(self) -> int:
        """Claim and fire one batch. Two workers' batches may each hold an incident the other's next
        timer locks (PostgreSQL: a deadlock, one of them aborted): the aborted batch is rolled back
        whole, its locks with it, and run again, a few times, each after a short wait. Its timers were
        never marked: they fire in the next run, not after a failure's backoff."""
        attempt = 1
        while True:
            try:
                return await self._claim_and_fire()
            except Exception as exc:
                if attempt == BATCH_ATTEMPTS or not transient(exc):
                    raise
                log.info("a timer batch met another worker's transaction (%s); running it again", exc)
                await asyncio.sleep(0.02 * attempt)
                attempt += 1

    async def _claim_and_fire(self) -> int:
        now = self.clock.now()
        async with self.db.transaction() as session:
            query = (
                select(Timer)
                .where(Timer.fired_at.is_(None), Timer.due_at <= now)
                .order_by(Timer.due_at, Timer.id)
                .limit(self.batch)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            timers = list(await session.scalars(query))
            await self._fire_all(session, timers, now, whole=True)
        return len(timers)

    async def fire_due_now(self, session: AsyncSession) -> None:
        """Fire the `inline` timers this transaction made due at once, inside it (a `Database.before_commit` hook).

        Team assembly and the first page then commit with the incident that caused them, instead of a
        worker's claim transaction later. Other kinds (an announcement, a reminder) wait for a worker,
        off the paging path. The timer rows are this transaction's own writes, so no other worker can
        claim them meanwhile.
        """
        for _ in range(INLINE_ROUNDS):
            due = [k for k in session.info.pop(DUE_NOW, ()) if k[0] in self.inline and k[0] in self.handlers]
            if not due:
                return
            now = self.clock.now()
            query = (
                select(Timer)
                .where(
                    or_(*((Timer.kind == kind) & (Timer.key == key) for kind, key in due)),
                    Timer.fired_at.is_(None),
                    Timer.due_at <= now,
                )
                .order_by(Timer.due_at, Timer.id)
            )
            await self._fire_all(session, list(await session.scalars(query)), now)

    async def _fire_all(
        self, session: AsyncSession, timers: list[Timer], now: datetime, whole: bool = False
    ) -> None:
        """`whole`: the transaction is this batch's own, run again whole if a handler meets another
        transaction (`_batch`); else (inline, in the transaction that made the timers due) each failure
        stays with its timer."""
        if not timers:
            return
        # Marked fired in one statement; a handler that fails puts its timer back (see _fire).
        ids = [t.id for t in timers]
        await session.execute(update(Timer).where(Timer.id.in_(ids)).values(fired_at=now))
        for timer in timers:
            await self._fire(session, timer, now, whole)

    async def _fire(self, session: AsyncSession, timer: Timer, now: datetime, whole: bool = False) -> None:
        timer_id, kind, key, attempts = timer.id, timer.kind, timer.key, timer.attempts
        try:
            async with session.begin_nested():
                handler = self.handlers.get(kind)
                if handler is None:
                    raise LookupError(f"no handler for timer kind {kind!r}")
                await handler(session, timer, Firing(now, max(now - timer.due_at, timedelta(0))))
            self.fired += 1
        except Exception as exc:
            if whole and transient(exc):
                raise  # the batch runs again whole (`_batch`): recording the failure would deadlock again
            self.failed += 1
            log.exception("timer %s %s failed (attempt %d)", kind, key, attempts + 1)
            await session.execute(
                update(Timer)
                .where(Timer.id == timer_id)
                .values(
                    fired_at=None,
                    attempts=Timer.attempts + 1,
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                    due_at=now + backoff(attempts + 1),
                )
            )

    async def next_due(self) -> datetime | None:
        async with self.db.session() as session:
            due: datetime | None = await session.scalar(
                select(func.min(Timer.due_at)).where(Timer.fired_at.is_(None))
            )
            return due

    async def wait(self, bus: Bus) -> None:
        """Sleep until a timer may be due: woken at once when one is scheduled (bus or NOTIFY).

        The wake-up is armed before the next due time is read, so a timer committed in between is
        either seen by the read or wakes the wait: never left for the poll.
        """
        woken = asyncio.ensure_future(bus.wait(TOPIC, MAX_WAIT))
        try:
            await asyncio.sleep(0)  # let the waiter subscribe
            due = await self.next_due()
            if due is None:
                await woken
                return
            seconds = (due - self.clock.now()).total_seconds()
            if seconds <= 0:
                return
            await asyncio.wait({woken}, timeout=min(seconds, MAX_WAIT))
        finally:
            woken.cancel()


async def listen(db: Database, bus: Bus) -> None:
    """Relay PostgreSQL NOTIFYs about new timers to this process's bus; reconnects until cancelled."""
    conninfo = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    failures = 0
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                failures = 0
                async for _ in conn.notifies():
                    bus.publish(TOPIC)
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            log.warning("LISTEN %s lost; reconnecting (%d)", CHANNEL, failures, exc_info=True)
        await asyncio.sleep(min(2**failures, 30))
