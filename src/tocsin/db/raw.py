"""Driver-level statements inside a session's transaction, for the hot paths where SQLAlchemy's own
per-statement cost (compiling, type processing, the async adaption: about a millisecond a statement
on a busy two-core machine) is most of the work.

SQL is written once with `?` placeholders; values go through `time` and `json` so that they are stored
as SQLAlchemy stores them (SQLite: `YYYY-MM-DD HH:MM:SS.ffffff` UTC text and JSON text; PostgreSQL:
timestamptz and json), and the ORM reads them back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from psycopg.types.json import Json
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin.db.writers import Ticket, Writers


@dataclass(frozen=True, slots=True)
class Step:
    """One statement: `params` one row of values, or many rows when `many` (an executemany)."""

    sql: str
    params: Sequence[Any] = ()
    many: bool = False


T = TypeVar("T")
Rows = list[list[tuple[Any, ...]]]
# A unit of database work as a generator: it yields the statements of each trip, is sent their rows, and
# returns its result. Written once, it runs in one hop on SQLite and as a pipeline a trip on PostgreSQL.
Plan = Generator[list[Step], Rows, T]


class Raw:
    """The driver connection under a session (aiosqlite or psycopg), in the session's transaction.

    On SQLite the statements run on aiosqlite's thread through its `_execute`, the one call its own
    methods all go through: a whole batch of statements then costs one hop to that thread, not one each.
    """

    def __init__(self, driver: Any, sqlite: bool, writers: Writers | None = None) -> None:
        self.driver, self.sqlite = driver, sqlite
        self.writers = writers  # SQLite: the turn to write that plans which commit take first

    @classmethod
    async def of(cls, connection: AsyncConnection, writers: Writers | None = None) -> Raw:
        fairy = await connection.get_raw_connection()
        return cls(fairy.driver_connection, connection.dialect.name == "sqlite", writers)

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

    async def drive(self, plan: Plan[T], commit: bool = False) -> T:
        """Run a plan to its end, and commit if asked (rolled back if the plan raises): on SQLite all of
        it, the Python between its trips and the commit included, in one call on aiosqlite's thread (no
        hop back to the event loop between reads and writes); elsewhere one `run` a trip."""
        if self.sqlite and getattr(self.driver, "_execute", None) is not None:
            return await self.driver._execute(self._drive_sqlite, plan, commit)  # type: ignore[no-any-return]
        try:
            if commit and self.sqlite:
                await self.driver.execute("BEGIN IMMEDIATE")
            steps = next(plan)
            while True:
                steps = plan.send(await self.run(*steps))
        except StopIteration as finished:
            result: T = finished.value
        except BaseException:
            if commit:
                await self.driver.rollback()
            raise
        if commit:
            await self.driver.commit()
        return result

    def _drive_sqlite(self, plan: Plan[T], commit: bool) -> T:
        connection = self.driver._conn  # on aiosqlite's own thread: the one its connection belongs to
        writers = self.writers if commit else None
        if writers is None:
            return self._run_plan(connection, plan, commit)
        ticket = Ticket()
        writers.take(ticket)  # this thread may block: the turn comes when another process lets it go
        try:
            return self._run_plan(connection, plan, commit)
        finally:
            writers.give_back(ticket)

    def _run_plan(self, connection: Any, plan: Plan[T], commit: bool) -> T:
        try:
            if commit:  # the write lock first, as `Database.transaction` takes it
                connection.execute("BEGIN IMMEDIATE")
            steps = next(plan)
            while True:
                steps = plan.send(self._run_sqlite(steps))
        except StopIteration as finished:
            result: T = finished.value
        except BaseException:
            if commit:
                connection.rollback()
            raise
        if commit:
            connection.commit()
        return result

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

    def json(self, value: Any) -> Any:
        if not self.sqlite:
            return Json(value)
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # what orjson refuses (integers past 64 bits, keys not strings), json takes
            return json.dumps(value)

    def records(self, rows: list[dict[str, Any]]) -> str:
        """PostgreSQL: rows as one JSON array for `json_populate_recordset` (instants as RFC 3339 text)."""
        try:
            return orjson.dumps(rows).decode()
        except TypeError:  # what orjson refuses (integers past 64 bits, keys not strings), json takes
            return json.dumps(rows, default=lambda value: value.isoformat())

    def read_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value
