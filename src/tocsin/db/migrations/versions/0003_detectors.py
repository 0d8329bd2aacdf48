"""detectors: heartbeat and error-rate detector state

Revision ID: 0003_detectors
Revises: 0002
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tocsin.db.base

revision = "0003_detectors"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeat_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("last_ping_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("due_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("down_since", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pings", sa.Integer(), nullable=False),
        sa.Column("created_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heartbeat_states")),
        sa.UniqueConstraint("name", name=op.f("uq_heartbeat_states_name")),
    )
    op.create_table(
        "error_rate_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("baseline", sa.Double(), nullable=True),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("above", sa.Integer(), nullable=False),
        sa.Column("elevated", sa.Integer(), nullable=False),
        sa.Column("below", sa.Integer(), nullable=False),
        sa.Column("raised", sa.Boolean(), nullable=False),
        sa.Column("raised_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("last_sample_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_sample_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_count", sa.Integer(), nullable=False),
        sa.Column("counter_total", sa.Double(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("created_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_error_rate_states")),
        sa.UniqueConstraint("name", name=op.f("uq_error_rate_states_name")),
    )


def downgrade() -> None:
    op.drop_table("error_rate_states")
    op.drop_table("heartbeat_states")
