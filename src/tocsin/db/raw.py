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
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Step:
    """One statement: `params` one row of values, or many rows when `many` (an executemany)."""

    sql: str
    params: Sequence[Any] = ()
    many: bool = False


@dataclass(frozen=True, slots=True)
class Copy:
    """New rows by PostgreSQL's COPY; the step's rows are their new ids, `(id,)` each, in row order."""

    table: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


T = TypeVar("T")
Rows = list[list[tuple[Any, ...]]]
# A unit of database work as a generator: it yields the statements of each trip, is sent their rows, and
# returns its result. Written once, it runs in one hop on SQLite and as a pipeline a trip on PostgreSQL.
Plan = Generator[list[Step] | list[Copy], Rows, T]


class Raw:
    """The driver connection under a session (aiosqlite or psycopg), in the session's transaction.

    On SQLite the statements run on aiosqlite's thread through its `_execute`, the one call its own
    methods all go through: a whole batch of statements then costs one hop to that thread, not one each.
    """

    def __init__(self, driver: Any, sqlite: bool) -> None:
        self.driver, self.sqlite = driver, sqlite

    @classmethod
    async def of(cls, session: AsyncSession) -> Raw:
        connection = await session.connection()
        fairy = await connection.get_raw_connection()
        return cls(fairy.driver_connection, connection.dialect.name == "sqlite")

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

    async def drive(self, plan: Plan[T]) -> T:
        """Run a plan to its end: on SQLite all of it, the Python between its trips included, in one call
        on aiosqlite's thread (no hop back to the event loop between reads and writes); elsewhere one
        `run` (or `copy_in`) a trip."""
        if self.sqlite and getattr(self.driver, "_execute", None) is not None:
            return await self.driver._execute(self._drive_sqlite, plan)  # type: ignore[no-any-return]
        try:
            steps = next(plan)
            while True:
                steps = plan.send(await self._trip(steps))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _trip(self, steps: list[Step] | list[Copy]) -> Rows:
        copies = [s for s in steps if isinstance(s, Copy)]
        if copies:
            return [[(id_,) for id_ in await self.copy_in(c.table, c.columns, c.rows)] for c in copies]
        return await self.run(*(s for s in steps if isinstance(s, Step)))

    def _drive_sqlite(self, plan: Plan[T]) -> T:
        try:
            steps = next(plan)
            while True:
                steps = plan.send(self._run_sqlite([s for s in steps if isinstance(s, Step)]))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def copy_in(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[int]:
        """PostgreSQL: new rows by COPY, several times faster than a multi-row INSERT; their new ids, in
        row order (drawn from the table's sequence first, as the column's default would)."""
        cursor = await self.driver.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(rows)]
        )
        ids = [row[0] for row in await cursor.fetchall()]
        sql = f"COPY {table} (id, {', '.join(columns)}) FROM STDIN"
        async with self.driver.cursor() as copying, copying.copy(sql) as copy:
            for id_, row in zip(ids, rows, strict=True):
                await copy.write_row((id_, *row))
        return ids

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

    def read_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value
