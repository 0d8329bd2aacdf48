"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

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


async def test_alert_references_are_declared_on_sqlite_only(db: Database) -> None:
    """PostgreSQL checks an alert's integration and incident in a trigger that locks them (see
    `alerts.models.Alert`): migration 0008 drops those two constraints there, SQLite keeps them."""

    def referred(conn: Connection) -> list[str]:
        return sorted(fk["referred_table"] for fk in inspect(conn).get_foreign_keys("alerts"))

    async with db.engine.connect() as conn:
        found = await conn.run_sync(referred)
    assert found == ([] if db.engine.dialect.name == "postgresql" else ["incidents", "integrations"])
