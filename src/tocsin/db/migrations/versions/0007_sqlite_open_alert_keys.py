"""SQLite: no index of open alerts by dedup key; each process maps them in memory (`alerts.openkeys`).

PostgreSQL keeps `uq_alerts_open_dedup`.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("uq_alerts_open_dedup", table_name="alerts")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(
            "uq_alerts_open_dedup",
            "alerts",
            ["integration_id", "dedup_key"],
            unique=True,
            sqlite_where=sa.text("status != 'resolved'"),
        )
