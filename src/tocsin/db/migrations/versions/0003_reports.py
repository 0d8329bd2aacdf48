"""user reports

Revision ID: 0003_reports
Revises: 0002
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tocsin.db.base

revision = "0003_reports"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("reporter", sa.String(length=300), nullable=False),
        sa.Column("created_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("triaged_by", sa.String(length=64), nullable=True),
        sa.Column("triaged_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_reports_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index("ix_reports_status", ["status", "id"], unique=False)
        batch_op.create_index("ix_reports_component_created", ["component", "created_at"], unique=False)
        batch_op.create_index("ix_reports_reporter_created", ["reporter", "created_at"], unique=False)

    op.create_table(
        "report_bursts",
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("started_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_report_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("alert", sa.String(length=16), nullable=False),
        sa.Column("alert_due_at", tocsin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reporters", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_report_bursts_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("component", name=op.f("pk_report_bursts")),
    )


def downgrade() -> None:
    op.drop_table("report_bursts")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_reporter_created")
        batch_op.drop_index("ix_reports_component_created")
        batch_op.drop_index("ix_reports_status")
    op.drop_table("reports")
