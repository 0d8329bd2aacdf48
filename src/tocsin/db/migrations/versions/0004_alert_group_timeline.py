"""Merge the three 0003 branches; alert groups remember what the timeline has been told.

Revision ID: 0004
Revises: 0003_detectors, 0003_monitors, 0003_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tocsin.db.base

revision = "0004"
down_revision = ("0003_detectors", "0003_monitors", "0003_reports")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("told", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("told_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.drop_column("told_at")
        batch_op.drop_column("told")
