"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from tocsin.db.base import on_dialect
from tocsin.db.engine import Database
from tocsin.db.models import Base


async def test_models_and_migrations_agree(db: Database) -> None:
    def diff(conn: Connection) -> list[object]:
        opts = {"compare_type": True, "include_object": on_dialect(conn.dialect.name)}
        context = MigrationContext.configure(conn, opts=opts)
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
