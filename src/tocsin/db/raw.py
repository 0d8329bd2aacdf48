"""Driver-level statements on a pooled connection, for the hot paths where SQLAlchemy's own
per-statement cost (compiling, type processing, the async adaption: about a millisecond a statement
on a busy two-core machine) is most of the work.

SQL is written once with `?` placeholders; values go through `time`, `json` (SQLite) and `records`
(PostgreSQL's new rows) so that they are stored
as SQLAlchemy stores them (SQLite: `YYYY-MM-DD HH:MM:SS.ffffff` UTC text and JSON text; PostgreSQL:
timestamptz and json), and the ORM reads them back unchanged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.db.wal import WalFile
from tocsin.db.writers import Ticket, Writers


@dataclass(frozen=True, slots=True)
class Step:
    """One statement: `params` one row of values, or many rows when `many` (an executemany). A read
    `checked` is run again in the turn to write when the plan read ahead of it (`Raw._read_ahead`)."""

    sql: str
    params: Sequence[Any] = ()
    many: bool = False
    checked: bool = True


class Last(list[Step]):
    """A plan's last trip. With `Raw.drive(commit=True)` on PostgreSQL its COMMIT rides in the same
    pipeline: one round trip less a transaction (the rows come back once the commit is durable)."""


_COMMIT = Step("COMMIT")

T = TypeVar("T")
Rows = list[list[tuple[Any, ...]]]
# A unit of database work as a generator: it yields the statements of each trip, is sent their rows, and
# returns its result. Written once, it runs in one hop on SQLite and as a pipeline a trip on PostgreSQL.
Plan = Generator[list[Step], Rows, T]


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson refuses (integers past 64 bits, keys not strings), json takes
        return json.dumps(value, default=lambda instant: instant.isoformat())


def _reads(step: Step) -> bool:
    return not step.many and step.sql.lstrip()[:6].upper() == "SELECT"


@dataclass(slots=True)
class Ahead:
    """A plan run ahead to its first writes: the reads with their rows, and the writes it then yielded
    (None if it ended without any, with `result`)."""

    plan: Plan[Any]
    reads: list[tuple[list[Step], Rows]]
    pending: list[Step] | None
    result: Any = None


class Raw:
    """The driver connection (aiosqlite or psycopg) of a pooled connection (`Database.raw`).

    On SQLite the statements run on aiosqlite's thread through its `_execute`, the one call its own
    methods all go through: a whole batch of statements then costs one hop to that thread, not one each.
    A short plan that commits runs on the caller's thread instead (`drive(small=True)`).
    """

    def __init__(
        self,
        driver: Any,
        sqlite: bool,
        writers: Writers | None = None,
        ahead: bool = False,
        any_thread: bool = False,
        wal: WalFile | None = None,
    ) -> None:
        self.driver, self.sqlite = driver, sqlite
        self.writers = writers  # SQLite: the turn to write that plans which commit take first
        self.ahead = ahead  # SQLite written by several processes: plans read ahead (`_read_ahead`)
        # SQLite: the connection may be used from any thread (`check_same_thread=False`, as Tocsin's
        # engine opens it), so a small plan may run on the caller's (`drive(small=True)`)
        self.any_thread = any_thread
        # SQLite: the connection runs `synchronous=NORMAL`; each commit syncs the log itself, after the
        # turn to write is given back (`tocsin.db.wal`)
        self.wal = wal

    @classmethod
    async def of(
        cls,
        connection: AsyncConnection,
        writers: Writers | None = None,
        ahead: bool = False,
        any_thread: bool = False,
        wal: WalFile | None = None,
    ) -> Raw:
        fairy = await connection.get_raw_connection()
        sqlite = connection.dialect.name == "sqlite"
        return cls(fairy.driver_connection, sqlite, writers, ahead, any_thread and sqlite, wal)

    def _sql(self, sql: str) -> str:
        return sql if self.sqlite else sql.replace("?", "%s")

    async def run(self, *steps: Step) -> list[list[tuple[Any, ...]]]:
        """The statements in order, in one trip to the database (SQLite: one call on its thread;
        PostgreSQL: one pipeline); the rows of each (none for an executemany)."""
        if not steps:
            return []
        if self.sqlite:
            on_its_thread = getattr(self.driver, "_execute", None)
            if on_its_thread is not None:
                return await on_its_thread(self._run_sqlite, steps)  # type: ignore[no-any-return]
            return [await self._step_sqlite(step) for step in steps]  # an aiosqlite without it: a hop each
        cursors = []
        async with self.driver.pipeline():
            for step in steps:
                cursor = self.driver.cursor()
                if step.many:
                    await cursor.executemany(self._sql(step.sql), step.params)
                else:
                    await cursor.execute(self._sql(step.sql), step.params)
                cursors.append(cursor)
        return [list(await cursor.fetchall()) if cursor.description else [] for cursor in cursors]

    async def drive(self, make: Callable[[], Plan[T]], commit: bool = False, small: bool = False) -> T:
        """Run a plan (`make()` builds it) to its end, and commit if asked (rolled back if the plan
        raises): on SQLite all of it, the Python between its trips and the commit included, in one call
        on aiosqlite's thread (no hop back to the event loop between reads and writes); elsewhere one
        `run` a trip, the COMMIT in the trip the plan yields as `Last`. With `ahead` (SQLite written by
        several processes), see `_read_ahead`.

        `small`: the caller knows the plan to be short (milliseconds). On SQLite it then runs here, on the
        event loop's thread, fsync included (`_drive_here`): the hop to aiosqlite's thread and back costs
        more than such a plan, and while both threads run Python each statement waits for the GIL the
        other holds (one process taking one alert a request, 32 clients: 2.9 ms a commit of 16 alerts on
        the thread, 0.7 ms here).
        """
        if self.sqlite and getattr(self.driver, "_execute", None) is not None:
            if commit and small and self.any_thread:
                return await self._drive_here(make)
            return await self.driver._execute(self._drive_sqlite, make, commit)  # type: ignore[no-any-return]
        plan, ticket = make(), Ticket()
        committed = False
        try:
            try:
                if commit and self.sqlite:
                    await self.begin(ticket)
                steps = next(plan)
                while True:
                    if committed:
                        raise RuntimeError("the plan went on after its last trip")
                    if commit and not self.sqlite and isinstance(steps, Last):
                        rows = (await self.run(*steps, _COMMIT))[:-1]
                        committed = True
                    else:
                        rows = await self.run(*steps)
                    steps = plan.send(rows)
            except StopIteration as finished:
                result: T = finished.value
            except BaseException:
                if commit:
                    await self.driver.rollback()
                raise
            if commit and not committed:
                await self.driver.commit()
                self._durable(ticket)
            return result
        finally:
            if self.writers is not None:  # after the commit: only then may the next process write
                self.writers.give_back(ticket)

    async def _drive_here(self, make: Callable[[], Plan[T]]) -> T:
        """A small committing plan on this thread. The event loop never blocks on another process: if
        the turn to write is taken, the plan reads ahead (when `ahead`), then the turn is waited for on
        a thread that does nothing else, and the plan goes on here once it comes."""
        held = Ticket()
        ahead = None
        if self.writers is not None and not self.writers.take_now(held):
            if self.ahead:
                ahead = self._read_ahead(make())
                if ahead.pending is None:
                    return ahead.result  # type: ignore[no-any-return]  # it only read: nothing to commit
            try:
                await asyncio.to_thread(self.writers.take, held)
            except BaseException:
                self.writers.give_back(held)  # if the turn comes after all, it is let go at once
                raise
        return self._drive_sqlite(make, True, held, ahead)

    def _drive_sqlite(
        self,
        make: Callable[[], Plan[T]],
        commit: bool,
        held: Ticket | None = None,
        ahead: Ahead | None = None,
    ) -> T:
        """On aiosqlite's own thread, the one its connection belongs to; or on the caller's, with the
        turn to write already `held` (the connection is this caller's alone until it gives it back) and
        the plan maybe run `ahead`."""
        connection = self.driver._conn
        if not commit:
            return self._continue(make())
        if held is None and self.ahead and self.writers is not None:
            ahead = self._read_ahead(make())
            if ahead.pending is None:
                return ahead.result  # type: ignore[no-any-return]  # it only read: nothing to commit
        ticket = held or Ticket()
        try:
            self._begin(ticket, turn_held=held is not None)
            result: T
            try:
                if ahead is not None and all(self._holds(steps, rows) for steps, rows in ahead.reads):
                    result = self._continue(ahead.plan, ahead.pending)
                else:  # not run ahead, or what it read has changed since: from the start, in turn
                    result = self._continue(make())
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
            self._durable(ticket)
            return result
        finally:
            if self.writers is not None:
                self.writers.give_back(ticket)

    def _durable(self, ticket: Ticket) -> None:
        """SQLite, just committed: with `wal`, the turn to write given back, then the log synced."""
        if self.wal is not None:
            if self.writers is not None:
                self.writers.give_back(ticket)
            self.wal.sync()

    async def begin(self, ticket: Ticket) -> None:
        """SQLite: open a write transaction as every one is (`_begin`), in one hop to the connection's
        thread. The caller gives the turn back (`Writers.give_back(ticket)`) once it has committed."""
        on_its_thread = getattr(self.driver, "_execute", None)
        if on_its_thread is not None:
            await on_its_thread(self._begin, ticket)
            return
        if self.writers is not None:  # an aiosqlite without `_execute`: the turn on a thread of its own
            await asyncio.to_thread(self.writers.take, ticket)
        await self.driver.execute("BEGIN IMMEDIATE")

    def _begin(self, ticket: Ticket, turn_held: bool = False) -> None:
        """On the connection's thread, which may block here: the turn to write the file (when there is a
        file, unless `turn_held`), then SQLite's write lock, before the transaction's first read."""
        if self.writers is not None and not turn_held:
            self.writers.take(ticket)
        self.driver._conn.execute("BEGIN IMMEDIATE")

    def _continue(self, plan: Plan[T], pending: list[Step] | None = None) -> T:
        """The plan's trips to its end (from `pending`, the steps it last yielded, if given)."""
        try:
            steps = pending if pending is not None else next(plan)
            while True:
                steps = plan.send(self._run_sqlite(steps))
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]

    def _holds(self, steps: list[Step], rows: Rows) -> bool:
        """Whether the checked reads among `steps` still return `rows` (theirs)."""
        checked = [(step, found) for step, found in zip(steps, rows, strict=True) if step.checked]
        return self._run_sqlite([step for step, _ in checked]) == [found for _, found in checked]

    def _read_ahead(self, plan: Plan[T]) -> Ahead:
        """The plan run up to its first writes, outside any transaction and without the turn to write.

        When several processes write one SQLite file, the Python of a plan (for the storm lane: building
        and encoding every new alert) is most of its time. Run ahead like this, it overlaps another
        process's turn instead of waiting for its own. In turn, every read is run again: only if each
        returns the same rows are the writes the plan decided from them still right; else the plan
        starts over, in turn.
        """
        reads: list[tuple[list[Step], Rows]] = []
        try:
            steps = next(plan)
            while all(_reads(step) for step in steps):
                rows = self._run_sqlite(steps)
                reads.append((steps, rows))
                steps = plan.send(rows)
        except StopIteration as finished:
            return Ahead(plan, reads, None, finished.value)
        return Ahead(plan, reads, steps)

    async def _step_sqlite(self, step: Step) -> list[tuple[Any, ...]]:
        if step.many:
            await (await self.driver.executemany(step.sql, step.params)).close()
            return []
        return list(await self.driver.execute_fetchall(step.sql, step.params))

    def _run_sqlite(self, steps: Sequence[Step]) -> list[list[tuple[Any, ...]]]:
        connection = self.driver._conn  # on aiosqlite's own thread: the one its connection belongs to
        out: list[list[tuple[Any, ...]]] = []
        for step in steps:
            if step.many:
                connection.executemany(step.sql, step.params).close()
                out.append([])
            else:
                cursor = connection.execute(step.sql, step.params)
                out.append(cursor.fetchall())
                cursor.close()
        return out

    def time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else value

    def read_time(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    def json(self, value: Any) -> str:
        """SQLite: a JSON column's value as the text it stores."""
        return _dumps(value)

    def records(self, rows: list[dict[str, Any]]) -> str:
        """PostgreSQL: rows as one JSON array for `json_populate_recordset` (instants as RFC 3339 text)."""
        return _dumps(rows)

    def read_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value
