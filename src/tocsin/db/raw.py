"""Driver-level statements inside a session's transaction, for the hot paths where SQLAlchemy's own
per-statement cost (compiling, type processing, the async adaption: about a millisecond a statement
on a busy two-core machine) is most of the work.

SQL is written once with `?` placeholders; values go through `time` and `json` so that they are stored
exactly as SQLAlchemy stores them (SQLite: `YYYY-MM-DD HH:MM:SS.ffffff` UTC text and JSON text;
PostgreSQL: timestamptz and json), and the ORM reads them back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Json
from sqlalchemy.ext.asyncio import AsyncSession


class Raw:
    """The driver connection under a session (aiosqlite or psycopg), in the session's transaction."""

    def __init__(self, driver: Any, sqlite: bool) -> None:
        self.driver, self.sqlite = driver, sqlite

    @classmethod
    async def of(cls, session: AsyncSession) -> Raw:
        connection = await session.connection()
        fairy = await connection.get_raw_connection()
        return cls(fairy.driver_connection, connection.dialect.name == "sqlite")

    def _sql(self, sql: str) -> str:
        return sql if self.sqlite else sql.replace("?", "%s")

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement: one call to the driver (SQLite: one hop to its thread)."""
        if self.sqlite:
            return list(await self.driver.execute_fetchall(sql, params))
        cursor = await self.driver.execute(self._sql(sql), params)
        return list(await cursor.fetchall()) if cursor.description else []

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.sqlite:
            cursor = await self.driver.executemany(sql, rows)
            await cursor.close()
            return
        async with self.driver.cursor() as cursor:
            await cursor.executemany(self._sql(sql), rows)

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
        return json.dumps(value) if self.sqlite else Json(value)  # json.dumps: as SQLAlchemy stores it

    def read_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value
