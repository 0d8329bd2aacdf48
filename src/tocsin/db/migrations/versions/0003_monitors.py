"""monitors: health-check results, hourly and daily aggregates, state, runner lease

Revision ID: 0003_monitors
Revises: 0002
Create Date: 2026-11-26 18:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tocsin.db.base

revision = "0003_monitors"
down_revision = "0002"
branch_labels = None
depends_on = None


def _aggregate_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("ok_checks", sa.Integer(), nullable=False),
        sa.Column("up_seconds", sa.Double(), nullable=False),
        sa.Column("observed_seconds", sa.Double(), nullable=False),
        sa.Column("latency_p50", sa.Double(), nullable=True),
        sa.Column("latency_p95", sa.Double(), nullable=True),
        sa.Column("latency_p99", sa.Double(), nullable=True),
        sa.Column("latency_histogram", sa.JSON(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "monitor_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("at", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("failed", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_results")),
    )
    with op.batch_alter_table("monitor_results", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_results_at", ["at"], unique=False)
        batch_op.create_index("ix_monitor_results_monitor_at", ["monitor", "at"], unique=False)

    op.create_table(
        "monitor_hourly",
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("hour", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        *_aggregate_columns(),
        sa.PrimaryKeyConstraint("monitor", "hour", name=op.f("pk_monitor_hourly")),
    )
    with op.batch_alter_table("monitor_hourly", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_hourly_hour", ["hour"], unique=False)

    op.create_table(
        "monitor_daily",
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("day", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        *_aggregate_columns(),
        sa.PrimaryKeyConstraint("monitor", "day", name=op.f("pk_monitor_daily")),
    )
    with op.batch_alter_table("monitor_daily", schema=None) as batch_op:
        batch_op.create_index("ix_monitor_daily_day", ["day"], unique=False)

    op.create_table(
        "monitor_states",
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("changed_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("consecutive_successes", sa.Integer(), nullable=False),
        sa.Column("failing_since", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("alerted", sa.Boolean(), nullable=False),
        sa.Column("last_checked_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_ok", sa.Boolean(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_latency_ms", sa.Double(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_failed", sa.Text(), nullable=True),
        sa.Column("hourly_until", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("daily_until", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("monitor", name=op.f("pk_monitor_states")),
    )
    op.create_table(
        "monitor_leases",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_monitor_leases")),
    )


def downgrade() -> None:
    op.drop_table("monitor_leases")
    op.drop_table("monitor_states")
    with op.batch_alter_table("monitor_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_daily_day")
    op.drop_table("monitor_daily")
    with op.batch_alter_table("monitor_hourly", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_hourly_hour")
    op.drop_table("monitor_hourly")
    with op.batch_alter_table("monitor_results", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_results_monitor_at")
        batch_op.drop_index("ix_monitor_results_at")
    op.drop_table("monitor_results")
