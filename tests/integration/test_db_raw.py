"""Driver-level statements (`tocsin.db.raw`): one trip for many statements, and plans that commit
themselves, on a real SQLite (and the COMMIT in a plan's last trip on a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg
import pytest
from sqlalchemy import text

from tocsin.db.engine import Database
from tocsin.db.raw import Last, Plan, Raw, Rows, Step
from tocsin.db.wal import WalFile
from tocsin.db.writers import Abandoned, Ticket, Writers


class PublicOnly:
    """An aiosqlite connection seen through its public methods only (no `_execute`)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def execute_fetchall(self, sql: str, params: Any) -> Any:
        return await self.connection.execute_fetchall(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self.connection.executemany(sql, rows)

    async def execute(self, sql: str) -> Any:
        return await self.connection.execute(sql)

    async def commit(self) -> None:
        await self.connection.commit()

    async def rollback(self) -> None:
        await self.connection.rollback()


async def test_steps_run_in_order_in_one_call_or_one_by_one(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "raw.db") as connection:
        for raw in (Raw(connection, sqlite=True), Raw(PublicOnly(connection), sqlite=True)):
            results = await raw.run(
                Step("CREATE TABLE IF NOT EXISTS t (a INTEGER, b TEXT)"),
                Step("DELETE FROM t"),
                Step("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y")], many=True),
                Step("INSERT INTO t VALUES (?, ?), (?, ?) RETURNING a", [3, "z", 4, "w"]),
                Step("SELECT a, b FROM t WHERE a > ? ORDER BY a", [1]),
            )
            assert results[:3] == [[], [], []]
            assert sorted(results[3]) == [(3,), (4,)]
            assert results[4] == [(2, "y"), (3, "z"), (4, "w")]
        assert await Raw(connection, sqlite=True).run() == []


def counting(fail: bool) -> Plan[int]:
    """Read, decide, write: add one row per row already there, and fail before the end if asked."""
    rows: Rows = yield [Step("SELECT count(*) FROM t")]
    (count,) = rows[0][0]
    yield [Step("INSERT INTO t VALUES (?, ?)", [(i, "new") for i in range(count)], many=True)]
    if fail:
        raise LookupError("the plan stops")
    return int(count)


async def test_a_plan_runs_to_its_end_and_commits_or_rolls_back(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "raw.db") as connection:
        await connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        await connection.execute("INSERT INTO t VALUES (0, 'first')")
        await connection.commit()
        for raw in (Raw(connection, sqlite=True), Raw(PublicOnly(connection), sqlite=True)):
            before = (await connection.execute_fetchall("SELECT count(*) FROM t"))[0][0]
            try:
                await raw.drive(lambda: counting(fail=True), commit=True)
            except LookupError:
                pass
            else:
                raise AssertionError("the plan's error was lost")
            assert not connection.in_transaction
            assert (await connection.execute_fetchall("SELECT count(*) FROM t"))[0][0] == before
            assert await raw.drive(lambda: counting(fail=False), commit=True) == before
            assert not connection.in_transaction  # committed: another connection sees the rows
            async with aiosqlite.connect(tmp_path / "raw.db") as other:
                assert (await other.execute_fetchall("SELECT count(*) FROM t"))[0][0] == 2 * before


def locked_out(path: Path) -> Plan[bool]:
    """Whether another connection is kept from writing while the plan runs."""
    yield [Step("SELECT count(*) FROM t")]
    other = sqlite3.connect(path, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    finally:
        other.close()
    return False


async def test_a_plan_that_commits_holds_the_write_lock_from_its_first_read(tmp_path: Path) -> None:
    path = tmp_path / "raw.db"
    async with aiosqlite.connect(path) as connection:
        await connection.execute("CREATE TABLE t (a INTEGER)")
        await connection.commit()
        for raw in (Raw(connection, sqlite=True), Raw(PublicOnly(connection), sqlite=True)):
            assert await raw.drive(lambda: locked_out(path), commit=True)
            assert not await raw.drive(lambda: locked_out(path))  # a plan that does not commit takes no lock


async def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "tx.db"
    db = Database(f"sqlite:///{path}")
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (a INTEGER)"))
        async with db.transaction() as session:
            await session.execute(text("SELECT count(*) FROM t"))  # only a read so far
            other = sqlite3.connect(path, timeout=0)
            try:
                other.execute("BEGIN IMMEDIATE")
                raise AssertionError("another process could write during the transaction")
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
            finally:
                other.close()
        async with db.session() as session:  # a read session takes no lock
            await session.execute(text("SELECT count(*) FROM t"))
            other = sqlite3.connect(path, timeout=0)
            other.execute("BEGIN IMMEDIATE")
            other.rollback()
            other.close()
    finally:
        await db.dispose()


async def free(writers: Writers) -> None:
    """The turn can be had (within 10 s), then is given back."""
    ticket = Ticket()
    await asyncio.wait_for(asyncio.to_thread(writers.take, ticket), 10)
    writers.give_back(ticket)


async def test_committing_plans_queue_for_the_turn_to_write(tmp_path: Path) -> None:
    path = tmp_path / "raw.db"
    async with aiosqlite.connect(path) as connection:
        await connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        await connection.execute("INSERT INTO t VALUES (0, 'first')")
        await connection.commit()
        ours, theirs = Writers(str(path)), Writers(str(path))  # two processes: two open files
        try:
            their_turn = Ticket()
            theirs.take(their_turn)
            raw = Raw(connection, sqlite=True, writers=ours)
            waiting = asyncio.create_task(raw.drive(lambda: counting(False), commit=True))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            theirs.give_back(their_turn)
            assert await asyncio.wait_for(waiting, 10) == 1
            await free(theirs)  # ours let it go after its commit
        finally:
            ours.close()
            theirs.close()


def counting_on(threads: list[int], fail: bool = False) -> Plan[int]:
    """`counting`, noting the thread it runs on."""
    threads.append(threading.get_ident())
    return (yield from counting(fail))


def reading_on(threads: list[int]) -> Plan[int]:
    threads.append(threading.get_ident())
    rows: Rows = yield [Step("SELECT count(*) FROM t")]
    return int(rows[0][0][0])


async def test_a_small_plan_commits_on_the_callers_thread_if_the_turn_is_free(tmp_path: Path) -> None:
    path = tmp_path / "raw.db"
    async with aiosqlite.connect(path, check_same_thread=False) as connection:
        await connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        await connection.execute("INSERT INTO t VALUES (0, 'first')")
        await connection.commit()
        ours, theirs = Writers(str(path)), Writers(str(path))  # two processes: two open files
        here, threads = threading.get_ident(), []
        try:
            raw = Raw(connection, sqlite=True, writers=ours, any_thread=True)
            assert await raw.drive(lambda: counting_on(threads), commit=True, small=True) == 1
            assert threads == [here]  # no hop to aiosqlite's thread
            assert not connection.in_transaction
            await free(theirs)  # the turn was given back after the commit
            with pytest.raises(LookupError):
                await raw.drive(lambda: counting_on(threads, fail=True), commit=True, small=True)
            assert not connection.in_transaction  # rolled back, the turn given back
            await free(theirs)
            async with aiosqlite.connect(path) as other:
                assert (await other.execute_fetchall("SELECT count(*) FROM t"))[0][0] == 2

            # The turn taken by another process: waited for on a thread of its own, the event loop free
            # meanwhile; the plan then runs here.
            their_turn = Ticket()
            theirs.take(their_turn)
            waiting = asyncio.create_task(raw.drive(lambda: counting_on(threads), commit=True, small=True))
            await asyncio.sleep(0.3)  # the loop runs on
            assert not waiting.done()
            theirs.give_back(their_turn)
            assert await asyncio.wait_for(waiting, 10) == 2
            assert threads[-1] == here
            await free(theirs)

            # Not `small`, or a plan that does not commit: aiosqlite's thread as always.
            assert await raw.drive(lambda: counting_on(threads), commit=True) == 4
            assert await raw.drive(lambda: reading_on(threads), small=True) == 8
            assert here not in threads[-2:]
            # No file to share (no turn to take): small commits run here. A connection that belongs to
            # aiosqlite's thread alone (not `any_thread`) is used there only.
            bare = Raw(connection, sqlite=True, any_thread=True)
            assert await bare.drive(lambda: counting_on(threads), commit=True, small=True) == 8
            assert threads[-1] == here
            bound = Raw(connection, sqlite=True, writers=ours)
            assert await bound.drive(lambda: counting_on(threads), commit=True, small=True) == 16
            assert threads[-1] != here
        finally:
            ours.close()
            theirs.close()


async def test_a_turn_given_up_while_waiting_is_let_go_when_it_comes(tmp_path: Path) -> None:
    ours, theirs = Writers(str(tmp_path / "x.db")), Writers(str(tmp_path / "x.db"))
    try:
        their_turn, abandoned = Ticket(), Ticket()
        theirs.take(their_turn)
        waiting = asyncio.create_task(asyncio.to_thread(ours.take, abandoned))
        await asyncio.sleep(0.2)
        ours.give_back(abandoned)  # a cancelled transaction: no longer waiting
        theirs.give_back(their_turn)
        try:
            await asyncio.wait_for(waiting, 10)
            raise AssertionError("the abandoned ticket got the turn")
        except Abandoned:
            pass
        await free(theirs)  # not left held by the abandoned one
    finally:
        ours.close()
        theirs.close()


def another_process_writes(path: Path, sql: str) -> None:
    other = sqlite3.connect(path)
    other.execute(sql)
    other.commit()
    other.close()


async def test_a_plan_read_ahead_writes_only_if_its_reads_still_hold(tmp_path: Path) -> None:
    path = tmp_path / "raw.db"
    made: list[int] = []

    def plan(meddle: bool) -> Plan[int]:
        """`counting`, and on its first run another process adds a row right after the plan's read."""
        made.append(1)
        rows: Rows = yield [Step("SELECT count(*) FROM t")]
        (count,) = rows[0][0]
        if meddle and len(made) == 1:
            another_process_writes(path, "INSERT INTO t VALUES (-1, 'theirs')")
        yield [Step("INSERT INTO t VALUES (?, ?)", [(i, "new") for i in range(count)], many=True)]
        return int(count)

    def unchecked() -> Plan[int]:
        """A read marked `checked=False` (as the open-alert map's catch-up is) is not run again in
        turn: another process adding to what it read does not start the plan over."""
        made.append(1)
        rows: Rows = yield [Step("SELECT count(*) FROM log", checked=False)]
        another_process_writes(path, "INSERT INTO log VALUES ('theirs')")
        yield [Step("INSERT INTO log VALUES (?)", [("ours",)], many=True)]
        return int(rows[0][0][0])

    async with aiosqlite.connect(path) as connection:
        await connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        await connection.execute("CREATE TABLE log (who TEXT)")
        await connection.execute("INSERT INTO t VALUES (0, 'first')")
        await connection.commit()
        writers = Writers(str(path))
        try:
            raw = Raw(connection, sqlite=True, writers=writers, ahead=True)
            assert await raw.drive(lambda: plan(meddle=False), commit=True) == 1
            assert len(made) == 1  # read ahead, read again in turn, unchanged: written as planned
            made.clear()
            # 2 rows; the first run reads 2, then another process adds one: in turn the plan starts over.
            assert await raw.drive(lambda: plan(meddle=True), commit=True) == 3
            assert len(made) == 2
            async with aiosqlite.connect(path) as other:
                assert (await other.execute_fetchall("SELECT count(*) FROM t"))[0][0] == 6
            made.clear()
            assert await raw.drive(unchecked, commit=True) == 0
            assert len(made) == 1  # not started over
            async with aiosqlite.connect(path) as other:
                assert (await other.execute_fetchall("SELECT count(*) FROM log"))[0][0] == 2
        finally:
            writers.close()


def counting_last(fail: bool, more: bool = False) -> Plan[int]:
    """`counting` with its writes yielded as the last trip (a bad statement in it if `fail`), and a
    trip after it if `more`."""
    rows: Rows = yield [Step("SELECT count(*) FROM t")]
    (count,) = rows[0][0]
    writes = [Step("INSERT INTO t VALUES (?, ?)", [(i, "new") for i in range(count)], many=True)]
    if fail:
        writes.append(Step("INSERT INTO t VALUES (?, ?)", ["not a number", "bad"]))
    yield Last(writes)
    if more:
        yield [Step("SELECT 1")]
    return int(count)


class Counted:
    """A psycopg connection whose commits are counted."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection, self.commits = connection, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    async def commit(self) -> None:
        self.commits += 1
        await self.connection.commit()


async def _count(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as other:
        row = await (await other.execute("SELECT count(*) FROM t")).fetchone()
        assert row is not None
        return int(row[0])


async def test_on_postgresql_the_commit_rides_in_the_last_trip(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(url) as connection:
        await connection.execute("DROP TABLE IF EXISTS t")
        await connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        await connection.execute("INSERT INTO t VALUES (0, 'first')")
        await connection.commit()
        driver = Counted(connection)
        raw = Raw(driver, sqlite=False)

        assert await raw.drive(lambda: counting_last(fail=False), commit=True) == 1
        assert driver.commits == 0  # no trip of its own for the commit
        assert connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert await _count(url) == 2  # committed: another connection sees the rows

        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            await raw.drive(lambda: counting_last(fail=True), commit=True)
        assert connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert await _count(url) == 2  # nothing of the failed trip, nor of the trips before it

        with pytest.raises(RuntimeError, match="after its last trip"):
            await raw.drive(lambda: counting_last(fail=False, more=True), commit=True)
        assert await _count(url) == 4  # its last trip committed; nothing ran after it

        assert await raw.drive(lambda: counting(fail=False), commit=True) == 4  # no Last: committed after
        assert driver.commits == 1
        assert await _count(url) == 8
        await connection.execute("DROP TABLE t")
        await connection.commit()


async def test_on_sqlite_the_raw_connection_is_kept_until_a_plan_fails(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "kept.db") as setup:
        setup.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        setup.execute("INSERT INTO t VALUES (0, 'x')")
    db = Database(f"sqlite:///{tmp_path / 'kept.db'}")
    try:
        async with db.raw() as raw:
            first = raw.driver
        async with db.raw() as raw:
            assert raw.driver is first  # no checkout from the pool, no close, between commits
            assert raw.any_thread
            assert await raw.drive(lambda: counting(False), commit=True, small=True) == 1
        with pytest.raises(LookupError):
            async with db.raw() as raw:
                await raw.drive(lambda: counting(True), commit=True, small=True)
        async with db.raw() as raw:
            assert raw.driver is not first  # not reused after a plan that failed
            assert await raw.drive(lambda: counting(False), commit=True, small=True) == 2
    finally:
        await db.dispose()
    assert db._raw is None


class WatchedLog(WalFile):
    """The lane's log, noting what holds when it is synced: the commit's rows visible to a connection of
    another process's, and the turn to write free for another process."""

    def __init__(self, database: Path) -> None:
        super().__init__(str(database))
        self.database, self.seen, self.theirs = database, list[tuple[int, bool]](), Writers(str(database))

    def sync(self) -> None:
        with sqlite3.connect(self.database) as other:
            rows = other.execute("SELECT count(*) FROM t").fetchone()[0]
        turn = Ticket()
        free = self.theirs.take_now(turn)
        self.theirs.give_back(turn)
        self.seen.append((rows, free))
        super().sync()
        assert self._fd is not None and os.fstat(self._fd).st_ino == os.stat(self.path).st_ino


async def test_the_lane_syncs_its_log_itself_after_the_commit_and_the_turn(tmp_path: Path) -> None:
    path = tmp_path / "synced.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        setup.execute("INSERT INTO t VALUES (0, 'x')")
    db = Database(f"sqlite:///{path}")
    try:
        async with db.raw() as raw:
            # Its commits are not synced by SQLite (NORMAL) but by Tocsin; every other connection's are
            # (FULL).
            assert (await raw.driver.execute_fetchall("PRAGMA synchronous"))[0][0] == 1
            async with db.session() as session:
                assert (await session.execute(text("PRAGMA synchronous"))).scalar() == 2
            assert raw.wal is not None and raw.wal.path == f"{path}-wal"
            raw.wal = watched = WatchedLog(path)
            assert await raw.drive(lambda: counting(False), commit=True, small=True) == 1
            assert await raw.drive(lambda: counting(False), commit=True) == 2  # on aiosqlite's thread
            # Synced once a commit, after it (its rows there for all to read), with the turn given back.
            assert watched.seen == [(2, True), (4, True)]
            with pytest.raises(LookupError):
                await raw.drive(lambda: counting(True), commit=True, small=True)
            assert len(watched.seen) == 2  # rolled back: nothing to sync
            assert await raw.drive(lambda: reading_on([]), small=True) == 4
            assert len(watched.seen) == 2  # it only read
            watched.theirs.close()
    finally:
        await db.dispose()


def test_the_log_is_synced_where_it_is_now(tmp_path: Path) -> None:
    """A log made anew since it was opened (the last connection closed, another opened) is the one
    synced; no log at all is nothing to sync."""
    log = WalFile(str(tmp_path / "x.db"))
    log.sync()  # none yet
    Path(log.path).write_bytes(b"first")
    log.sync()
    first = os.fstat(log._fd).st_ino  # type: ignore[arg-type]
    Path(log.path).unlink()
    Path(log.path).write_bytes(b"second, made anew")
    log.sync()
    assert os.fstat(log._fd).st_ino == os.stat(log.path).st_ino != first  # type: ignore[arg-type]
    Path(log.path).unlink()
    log.sync()
    log.close()
    assert log._fd is None
