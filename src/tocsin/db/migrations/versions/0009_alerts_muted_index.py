"""The muted alerts by what muted them, to unmute them when their silence ends (`alerts.service.unmute_ended`).

Partial: only muted alerts are in it, so the alerts of a storm cost it nothing.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_WHERE = sa.text("muted_by IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_alerts_muted", "alerts", ["muted_by"], sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade() -> None:
    op.drop_index("ix_alerts_muted", table_name="alerts")
