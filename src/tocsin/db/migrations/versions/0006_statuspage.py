"""The status page: component statuses and history, updates, maintenance, subscribers, page version.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tocsin.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = tocsin.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "status_components",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_status_components")),
    )
    op.create_table(
        "status_maintenances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.Boolean(), nullable=False),
        sa.Column("scheduled_for", UTC, nullable=False),
        sa.Column("scheduled_until", UTC, nullable=True),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("completed_at", UTC, nullable=True),
        sa.Column("remind_at", UTC, nullable=True),
        sa.Column("reminded_at", UTC, nullable=True),
        sa.Column("silence_id", sa.Integer(), nullable=True),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["silence_id"], ["silences.id"], name=op.f("fk_status_maintenances_silence_id_silences")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_maintenances")),
    )
    op.create_index("ix_status_maintenances_status", "status_maintenances", ["status", "scheduled_for"])
    op.create_table(
        "status_component_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("old_status", sa.String(length=24), nullable=False),
        sa.Column("new_status", sa.String(length=24), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("maintenance_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_status_component_changes_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["maintenance_id"],
            ["status_maintenances.id"],
            name=op.f("fk_status_component_changes_maintenance_id_status_maintenances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_component_changes")),
    )
    op.create_index(
        "ix_status_component_changes_component_at", "status_component_changes", ["component", "at"]
    )
    op.create_table(
        "status_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("maintenance_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("affected", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_status_updates_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["maintenance_id"],
            ["status_maintenances.id"],
            name=op.f("fk_status_updates_maintenance_id_status_maintenances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_updates")),
    )
    op.create_index(op.f("ix_status_updates_incident_id"), "status_updates", ["incident_id"])
    op.create_index(op.f("ix_status_updates_maintenance_id"), "status_updates", ["maintenance_id"])
    op.create_table(
        "status_subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("confirm_sent_at", UTC, nullable=True),
        sa.Column("confirmed_at", UTC, nullable=True),
        sa.Column("unsubscribed_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_subscribers")),
        sa.UniqueConstraint("channel", "target", name="uq_status_subscribers_channel_target"),
    )
    op.create_table(
        "status_subscribe_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_subscribe_attempts")),
    )
    op.create_index("ix_status_subscribe_attempts_client_at", "status_subscribe_attempts", ["client", "at"])
    op.create_table(
        "status_versions",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_status_versions")),
    )


def downgrade() -> None:
    op.drop_table("status_versions")
    op.drop_index("ix_status_subscribe_attempts_client_at", table_name="status_subscribe_attempts")
    op.drop_table("status_subscribe_attempts")
    op.drop_table("status_subscribers")
    op.drop_index(op.f("ix_status_updates_maintenance_id"), table_name="status_updates")
    op.drop_index(op.f("ix_status_updates_incident_id"), table_name="status_updates")
    op.drop_table("status_updates")
    op.drop_index("ix_status_component_changes_component_at", table_name="status_component_changes")
    op.drop_table("status_component_changes")
    op.drop_index("ix_status_maintenances_status", table_name="status_maintenances")
    op.drop_table("status_maintenances")
    op.drop_table("status_components")
