"""PostgreSQL's pool: a connection that rested and was closed meanwhile is replaced before use."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tocsin.db import engine
from tocsin.db.engine import Database


async def backend_pid(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_rested_connection_that_was_closed_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(postgres_url)
    try:
        first = await backend_pid(db)
        assert await backend_pid(db) == first  # in steady use: the same connection, no ping
        # As a restart of PostgreSQL would: its server process ends while the connection rests.
        dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first])
        monkeypatch.setattr(engine, "PING_AFTER_IDLE", 0.0)  # it has rested long enough
        second = await backend_pid(db)
        assert second != first
    finally:
        await db.dispose()
