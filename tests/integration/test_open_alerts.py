"""One open alert per (integration, dedup key), whichever process sees the key: on SQLite each process's
map of open alerts (`alerts.openkeys`), on PostgreSQL the unique index."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.alerts import openkeys
from tocsin.alerts.integrations import IntegrationInfo
from tocsin.alerts.models import Alert
from tocsin.alerts.signals import Signal
from tocsin.app import build_runtime
from tocsin.config import Settings
from tocsin.db.engine import Database
from tocsin.runtime import Runtime
from tocsin.testing import FakeClock, migrated_sqlite, prometheus_integration


@pytest.fixture
async def other(rt: Runtime, database_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A second runtime on the same database, as a second `tocsin serve --workers` process would be."""
    second = build_runtime(Settings(database_url=database_url, background=False), clock=clock)
    yield second
    await second.ingestor.close()
    await second.db.dispose()
    await rt.ingestor.close()


async def integration(rt: Runtime, clock: FakeClock) -> IntegrationInfo:
    return await prometheus_integration(rt.db, clock, rt.policy)


def fire(*keys: str) -> list[Signal]:
    return [Signal(action="trigger", dedup_key=key, summary=f"{key} is down") for key in keys]


async def results(rt: Runtime, info: IntegrationInfo, signals: list[Signal]) -> list[str]:
    return [outcome.result for outcome in await rt.ingestor.submit(info, signals)]


async def open_alerts(rt: Runtime) -> dict[str, tuple[int, int]]:
    """Dedup key -> (open alerts, times seen), and every key with at most one open alert."""
    async with rt.db.session() as session:
        rows = (
            await session.execute(select(Alert.dedup_key, Alert.count).where(Alert.status != "resolved"))
        ).all()
    found: dict[str, tuple[int, int]] = {}
    for key, count in rows:
        alerts, seen = found.get(key, (0, 0))
        found[key] = (alerts + 1, seen + count)
    return found


async def test_each_process_finds_what_the_other_opened_and_resolved(
    rt: Runtime, other: Runtime, clock: FakeClock
) -> None:
    info = await integration(rt, clock)
    assert await results(other, info, fire("warm")) == ["opened"]  # the other's map is read now
    assert await results(rt, info, fire("a", "b", "c")) == ["opened"] * 3
    # Opened after the other process last looked: it still finds them, in the lane and on the full path.
    assert await results(other, info, fire("a", "b", "new")) == ["repeated", "repeated", "opened"]
    resolve_b = Signal(action="resolve", dedup_key="b")
    assert [o.result for o in await other.ingestor.submit(info, [*fire("c"), resolve_b])] == [
        "repeated",
        "resolved",
    ]
    # `rt` has b in its map from when it opened it; resolved since, b opens anew.
    assert await results(rt, info, fire("b", "a")) == ["opened", "repeated"]
    assert await results(other, info, fire("b")) == ["repeated"]
    assert await open_alerts(rt) == {
        "warm": (1, 1),
        "a": (1, 3),
        "b": (1, 2),
        "c": (1, 2),
        "new": (1, 1),
    }


async def test_two_processes_sending_the_same_new_keys_at_once_open_each_once(
    rt: Runtime, other: Runtime, clock: FakeClock
) -> None:
    info = await integration(rt, clock)
    keys = [f"k{i}" for i in range(40)]
    for start in range(0, 40, 10):
        batch = keys[start : start + 10]
        await asyncio.gather(
            *(rt.ingestor.submit(info, fire(key)) for key in batch),
            *(other.ingestor.submit(info, fire(key)) for key in reversed(batch)),
        )
    assert await open_alerts(rt) == {key: (1, 2) for key in keys}


@pytest.fixture
async def sqlite_rt(sqlite_template: Path, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Runtime]:
    db = Database(migrated_sqlite(sqlite_template, tmp_path / "tocsin.db"))
    yield build_runtime(Settings(database_url=db.url), clock=clock, db=db)
    await db.dispose()


async def test_the_map_is_read_afresh_when_resolved_keys_pile_up(
    sqlite_rt: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite only: PostgreSQL finds open alerts by its unique index."""
    rt = sqlite_rt
    info = await integration(rt, clock)
    assert await results(rt, info, fire("a", "b", "c")) == ["opened"] * 3
    await rt.ingestor.submit(info, [Signal(action="resolve", dedup_key=key) for key in ("a", "b")])
    known = openkeys.of(rt.db.engine)
    assert set(known.map.by_integration[info.id]) == {"a", "b", "c"}  # resolved keys stay for now
    known._check_at = 2  # as if the map had grown by half since its last count
    assert await results(rt, info, fire("d")) == ["opened"]  # the catch-up starts the count
    for _ in range(100):
        if known._pruning is None:
            break
        await asyncio.sleep(0.05)
    assert known._fresh is None  # 3 keys for 1 open alert: not yet worth a full read
    await rt.ingestor.submit(info, [Signal(action="resolve", dedup_key="c")])
    monkeypatch.setattr(openkeys, "_FIRST_CHECK", 0)
    known._check_at = 2
    assert await results(rt, info, fire("d")) == ["repeated"]  # counted again: 4 keys, 1 open alert
    for _ in range(100):
        if known._pruning is None:
            break
        await asyncio.sleep(0.05)
    assert known._fresh is not None
    assert await results(rt, info, fire("c", "a", "e")) == ["opened"] * 3
    # Taken on: the resolved a, b and c are gone; the c, a and e just opened are in, without a read.
    assert set(known.map.by_integration[info.id]) == {"c", "d", "a", "e"}
    assert await results(rt, info, fire("e")) == ["repeated"]
    assert await open_alerts(rt) == {"a": (1, 1), "c": (1, 1), "d": (1, 2), "e": (1, 2)}
    await rt.ingestor.close()


async def test_closing_the_pipeline_ends_the_map_s_background_count(
    sqlite_rt: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count of the open alerts under way when the app stops is cancelled, its connection given
    back, rather than left to die with the event loop."""
    rt = sqlite_rt
    info = await integration(rt, clock)
    known = openkeys.of(rt.db.engine)
    counting, ended = asyncio.Event(), []

    async def stuck_count() -> None:
        try:
            async with rt.db.engine.connect() as connection:
                await connection.execute(text("SELECT count(*) FROM alerts"))
                counting.set()
                await asyncio.Event().wait()
        finally:
            ended.append(True)
            known._pruning = None

    monkeypatch.setattr(known, "_prune", stuck_count)
    assert await results(rt, info, fire("a", "b")) == ["opened"] * 2
    assert await results(rt, info, fire("a")) == ["repeated"]  # the map has been read
    known._check_at = 1  # as if the map had grown by half since its last count
    assert await results(rt, info, fire("c")) == ["opened"]  # the catch-up starts the count
    await asyncio.wait_for(counting.wait(), timeout=5)
    await asyncio.wait_for(rt.ingestor.close(), timeout=5)
    assert ended == [True] and known._pruning is None  # it left its connection's block


async def test_a_commit_s_own_new_alerts_are_taken_in_only_if_no_other_row_came_between(
    sqlite_rt: Runtime, clock: FakeClock
) -> None:
    known = openkeys.OpenKeys(sqlite_rt.db.engine)
    known.map.last = 10
    known.opened(10, [(1, "a", 12), (1, "b", 13)])  # 11 is someone else's: read at the next catch-up
    known.opened(9, [(1, "a", 11)])  # caught up to 9, but the map is at 10 since
    assert known.map.by_integration == {} and known.map.last == 10
    known.opened(10, [(1, "a", 11), (2, "a", 13), (1, "b", 12)])
    assert known.map.by_integration == {1: {"a": 11, "b": 12}, 2: {"a": 13}}
    assert known.map.last == 13 and known.map.size == 3
    known.opened(13, [(1, "a", 15), (1, "c", 14)])  # a opened anew after it was resolved
    assert known.map.by_integration[1] == {"a": 15, "b": 12, "c": 14}
    assert known.map.last == 15 and known.map.size == 4


async def _held_insert(rt: Runtime, key: str) -> AsyncConnection:
    """Another transaction's insert of the open alert `key` (a copy of "seed"), left uncommitted."""
    columns = [c.name for c in Alert.__table__.columns if c.name != "id"]
    copied = ", ".join(":key" if name == "dedup_key" else name for name in columns)
    connection = await rt.db.engine.connect()
    await connection.begin()
    await connection.execute(
        text(
            f"INSERT INTO alerts ({', '.join(columns)}) SELECT {copied} FROM alerts WHERE dedup_key = 'seed'"
        ),
        {"key": key},
    )
    return connection


async def _until_blocked(rt: Runtime) -> None:
    async with rt.db.engine.connect() as connection:
        for _ in range(500):
            if (await connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar():
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the ingest never waited for the other transaction")


async def test_a_job_that_meets_other_commits_of_its_new_keys_is_retried_until_it_sees_them(
    rt: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL: an insert that waited for another transaction's insert of the same new key fails with
    a unique violation once that commits; the job is run again (and again) until it sees every such row."""
    if rt.db.is_sqlite:
        pytest.skip("SQLite writes one transaction at a time: there is no other insert to wait for")
    caplog.set_level(logging.INFO, "tocsin.alerts")
    info = await integration(rt, clock)
    assert await results(rt, info, fire("seed")) == ["opened"]
    first, second = await _held_insert(rt, "k1"), await _held_insert(rt, "k2")
    try:
        sent = asyncio.create_task(results(rt, info, fire("k1", "k2")))
        await _until_blocked(rt)
        await first.commit()  # the batch fails on k1; alone, it finds k1 and waits on k2
        await asyncio.sleep(0.05)
        await _until_blocked(rt)
        await second.commit()  # fails again, on k2; the next try finds both
        assert await asyncio.wait_for(sent, 10) == ["repeated", "repeated"]
    finally:
        await first.close()
        await second.close()
    assert await open_alerts(rt) == {"seed": (1, 1), "k1": (1, 2), "k2": (1, 2)}
    assert sum("retrying" in record.getMessage() for record in caplog.records) == 1
