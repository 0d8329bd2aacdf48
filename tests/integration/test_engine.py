"""The timer engine on SQLite and PostgreSQL: due timers fire once, in order, late ones say so,
failures retry with backoff, and concurrent workers never fire one timer twice."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.core.bus import Bus
from tocsin.db.engine import Database
from tocsin.engine import timers
from tocsin.engine.models import Timer
from tocsin.engine.worker import INLINE_ROUNDS, Firing, Worker, backoff
from tocsin.testing import FakeClock


class Recorder:
    """Handlers that write what they saw into a list (and may fail, or re-arm themselves)."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, timedelta]] = []
        self.failures = 0

    async def ok(self, session: AsyncSession, timer: Timer, firing: Firing) -> None:
        self.fired.append((timer.key, firing.late))

    async def flaky(self, session: AsyncSession, timer: Timer, firing: Firing) -> None:
        if self.failures < 2:
            self.failures += 1
            raise RuntimeError("downstream is down")
        self.fired.append((timer.key, firing.late))

    async def repeat(self, session: AsyncSession, timer: Timer, firing: Firing) -> None:
        self.fired.append((timer.key, firing.late))
        await timers.schedule(session, firing.now, timer.kind, timer.key, firing.now + timedelta(minutes=10))


async def schedule(
    db: Database, clock: FakeClock, kind: str, key: str, after: timedelta, **payload: Any
) -> None:
    async with db.transaction() as session:
        await timers.schedule(session, clock.now(), kind, key, clock.now() + after, payload)


async def test_due_timers_fire_once_in_order_and_stay_as_a_record(db: Database, clock: FakeClock) -> None:
    rec = Recorder()
    worker = Worker(db, clock, {"t": rec.ok})
    await schedule(db, clock, "t", "b", timedelta(minutes=2))
    await schedule(db, clock, "t", "a", timedelta(minutes=1))
    await schedule(db, clock, "t", "c", timedelta(minutes=3))
    assert await worker.tick() == 0
    clock.advance(timedelta(minutes=2))
    assert await worker.tick() == 2
    assert [k for k, _ in rec.fired] == ["a", "b"]
    assert await worker.tick() == 0  # fired timers never fire again
    async with db.session() as session:
        rows = {t.key: t for t in await session.scalars(select(Timer))}
    assert rows["a"].fired_at == clock.now() and rows["c"].fired_at is None


async def test_rescheduling_moves_the_one_timer(db: Database, clock: FakeClock) -> None:
    rec = Recorder()
    worker = Worker(db, clock, {"t": rec.ok})
    await schedule(db, clock, "t", "x", timedelta(minutes=1))
    await schedule(db, clock, "t", "x", timedelta(minutes=5))
    clock.advance(timedelta(minutes=2))
    assert await worker.tick() == 0
    clock.advance(timedelta(minutes=3))
    assert await worker.tick() == 1
    async with db.session() as session:
        assert len(list(await session.scalars(select(Timer)))) == 1


async def test_overdue_after_downtime_fires_once_and_reports_lateness(db: Database, clock: FakeClock) -> None:
    rec = Recorder()
    worker = Worker(db, clock, {"every10": rec.repeat})
    await schedule(db, clock, "every10", "r", timedelta(minutes=10))
    clock.advance(timedelta(hours=5))  # the process was down for hours: 30 intervals were missed
    assert await worker.tick() == 1
    assert rec.fired == [("r", timedelta(hours=4, minutes=50))]
    assert await worker.tick() == 0  # re-armed from now, not once per missed interval
    clock.advance(timedelta(minutes=10))
    assert await worker.tick() == 1 and rec.fired[-1] == ("r", timedelta(0))


async def test_a_failing_handler_is_retried_with_backoff_and_its_error_kept(
    db: Database, clock: FakeClock
) -> None:
    rec = Recorder()
    worker = Worker(db, clock, {"flaky": rec.flaky, "t": rec.ok})
    await schedule(db, clock, "flaky", "f", timedelta(0))
    await schedule(db, clock, "t", "fine", timedelta(0))
    assert await worker.tick() == 2  # one failure does not hold back the rest of the batch
    assert [k for k, _ in rec.fired] == ["fine"]
    async with db.session() as session:
        flaky = await session.scalar(select(Timer).where(Timer.key == "f"))
    assert flaky is not None and flaky.fired_at is None and flaky.attempts == 1
    assert flaky.last_error == "RuntimeError: downstream is down"
    assert flaky.due_at == clock.now() + backoff(1)
    clock.advance(backoff(1))
    await worker.tick()
    clock.advance(backoff(2))
    await worker.tick()
    assert [k for k, _ in rec.fired] == ["fine", "f"]
    assert backoff(1) == timedelta(seconds=5) and backoff(20) == timedelta(minutes=10)


async def test_an_unknown_kind_is_kept_with_an_error(db: Database, clock: FakeClock) -> None:
    worker = Worker(db, clock, {})
    await schedule(db, clock, "mystery", "m", timedelta(0))
    await worker.tick()
    async with db.session() as session:
        row = await session.scalar(select(Timer))
    assert row is not None and row.fired_at is None and "no handler" in (row.last_error or "")


async def test_concurrent_workers_fire_each_timer_exactly_once(db: Database, clock: FakeClock) -> None:
    """Four timer workers, each with its own database engine, as `tocsin serve --workers` runs them."""
    rec = Recorder()
    dbs = [Database(db.url) for _ in range(4)]
    workers = [Worker(d, clock, {"t": rec.ok}, batch=25) for d in dbs]
    async with db.transaction() as session:
        for i in range(400):
            await timers.schedule(session, clock.now(), "t", str(i), clock.now())
    try:
        await asyncio.gather(*(w.tick() for w in workers))
    finally:
        for d in dbs:
            await d.dispose()
    keys = [k for k, _ in rec.fired]
    assert len(keys) == 400 and len(set(keys)) == 400
    assert sum(w.fired for w in workers) == 400


async def test_scheduling_a_due_timer_wakes_the_worker(db: Database, clock: FakeClock) -> None:
    bus = Bus()
    db.on_commit = bus.publish
    worker = Worker(db, clock, {})
    waiting = asyncio.create_task(worker.wait(bus))
    await asyncio.sleep(0.05)
    await schedule(db, clock, "t", "now", timedelta(0))
    await asyncio.wait_for(waiting, 2)  # woken by the commit, well before the 5 s poll


async def test_tocsin_worker_claims_due_timers_and_stops_on_sigterm(db: Database, tmp_path: Any) -> None:
    """`tocsin worker` on either database: a timer due now is claimed and fired (this one has no
    handler, so the attempt is recorded with its error), and SIGTERM stops the worker cleanly."""
    import os
    import signal
    import subprocess
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    async with db.transaction() as session:
        now = datetime.now(UTC)
        await timers.schedule(session, now, "mystery", "cli", now)
    tocsin = Path(sys.executable).parent / "tocsin"
    env = {**os.environ, "TOCSIN_DATABASE_URL": db.url}
    log = (tmp_path / "worker.log").open("w+")
    proc = await asyncio.create_subprocess_exec(
        str(tocsin), "worker", env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        row = None
        for _ in range(300):  # up to 30 s: the worker migrates, starts, then claims at once
            async with db.session() as session:
                row = await session.scalar(select(Timer).where(Timer.key == "cli"))
            if row is not None and row.attempts:
                break
            await asyncio.sleep(0.1)
        assert row is not None and row.attempts == 1 and row.fired_at is None
        assert "no handler" in (row.last_error or "")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.seek(0)
        print(log.read())
        log.close()


async def test_timers_due_at_once_fire_inside_the_transaction_that_schedules_them(
    db: Database, clock: FakeClock
) -> None:
    rec = Recorder()
    worker = Worker(
        db, clock, {"t": rec.ok, "boom": rec.flaky, "slow": rec.ok}, inline={"t", "boom", "unhandled"}
    )
    db.before_commit["timers"] = worker.fire_due_now
    try:
        await schedule(db, clock, "t", "now", timedelta(0))
        await schedule(db, clock, "t", "later", timedelta(minutes=5))
        await schedule(db, clock, "slow", "s", timedelta(0))  # handled, not inline: left for the worker
        await schedule(db, clock, "unhandled", "u", timedelta(0))  # no handler here: left for a worker
        async with db.transaction() as session:  # scheduled and cancelled in one transaction: never fires
            await timers.schedule(session, clock.now(), "t", "gone", clock.now())
            await timers.cancel(session, "t", "gone")
        await schedule(db, clock, "boom", "b", timedelta(0))  # fails inline: back to pending, with backoff
    finally:
        del db.before_commit["timers"]
    assert rec.fired == [("now", timedelta(0))]
    async with db.session() as session:
        rows = {t.key: t for t in await session.scalars(select(Timer))}
    assert rows["now"].fired_at == clock.now()
    assert rows["later"].fired_at is None and rows["u"].fired_at is None and rows["s"].fired_at is None
    assert "gone" not in rows
    assert rows["b"].fired_at is None and rows["b"].attempts == 1
    assert rows["b"].last_error == "RuntimeError: downstream is down"
    assert rows["b"].due_at == clock.now() + backoff(1)


async def test_a_failed_commit_fires_nothing(db: Database, clock: FakeClock) -> None:
    rec = Recorder()
    worker = Worker(db, clock, {"t": rec.ok}, inline={"t"})
    db.before_commit["timers"] = worker.fire_due_now
    try:
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                await timers.schedule(session, clock.now(), "t", "x", clock.now())
                raise RuntimeError("the cause failed")
    finally:
        del db.before_commit["timers"]
    assert rec.fired == []
    async with db.session() as session:
        assert list(await session.scalars(select(Timer))) == []


async def test_a_timer_that_re_arms_itself_at_once_stops_after_a_few_rounds(
    db: Database, clock: FakeClock
) -> None:
    fired = 0

    async def again(session: AsyncSession, timer: Timer, firing: Firing) -> None:
        nonlocal fired
        fired += 1
        await timers.schedule(session, firing.now, timer.kind, timer.key, firing.now)

    worker = Worker(db, clock, {"loop": again}, inline={"loop"})
    db.before_commit["timers"] = worker.fire_due_now
    try:
        await schedule(db, clock, "loop", "l", timedelta(0))
    finally:
        del db.before_commit["timers"]
    assert fired == INLINE_ROUNDS
    async with db.session() as session:
        row = await session.scalar(select(Timer))
    assert row is not None and row.fired_at is None  # the rest is the worker's, at its own pace
