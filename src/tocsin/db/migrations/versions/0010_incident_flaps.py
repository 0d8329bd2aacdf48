"""Flapping: whether an incident resolved itself (its alerts all cleared before anyone acknowledged it),
and how many times an alert coming back has reopened it (`alerts.grouping.find_flapped`).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(
            sa.Column("resolved_itself", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("flaps", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("flaps")
        batch.drop_column("resolved_itself")
