"""Driver-level statements (`tocsin.db.raw`): one trip for many statements, on a real SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite

from tocsin.db.raw import Raw, Step


class PublicOnly:
    """An aiosqlite connection seen through its public methods only (no `_execute`)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def execute_fetchall(self, sql: str, params: Any) -> Any:
        return await self.connection.execute_fetchall(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self.connection.executemany(sql, rows)


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
