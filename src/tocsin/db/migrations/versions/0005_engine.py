"""The response engine: timers, the outbox, on-call overrides, pages, escalations; the stability watch.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tocsin.db.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC = tocsin.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("due_at", UTC, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("fired_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_timers_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timers")),
        sa.UniqueConstraint("kind", "key", name="uq_timers_kind_key"),
    )
    op.create_index(
        "ix_timers_pending",
        "timers",
        ["due_at"],
        postgresql_where=sa.text("fired_at IS NULL"),
        sqlite_where=sa.text("fired_at IS NULL"),
    )
    op.create_index(op.f("ix_timers_incident_id"), "timers", ["incident_id"])
    op.create_table(
        "instance_secrets",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_instance_secrets")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("thread", sa.String(length=200), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("person", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_outbox_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_thread", "outbox", ["thread"])
    op.create_index("ix_outbox_target_created", "outbox", ["channel", "target", "created_at"])
    op.create_index(op.f("ix_outbox_incident_id"), "outbox", ["incident_id"])
    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rotation", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=64), nullable=False),
        sa.Column("starts_at", UTC, nullable=False),
        sa.Column("ends_at", UTC, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("deleted_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_overrides")),
    )
    op.create_index(
        "ix_oncall_overrides_rotation_span", "oncall_overrides", ["rotation", "starts_at", "ends_at"]
    )
    op.create_table(
        "pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("acknowledged_at", UTC, nullable=True),
        sa.Column("acknowledged_via", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_pages_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint("incident_id", "person", "step", name="uq_pages_incident_person_step"),
    )
    op.create_index(op.f("ix_pages_incident_id"), "pages", ["incident_id"])
    op.create_table(
        "escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_escalations_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalations")),
        sa.UniqueConstraint("incident_id", "chain", name="uq_escalations_incident_chain"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("watch_until", UTC, nullable=True))
        batch_op.add_column(sa.Column("missed_updates", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("missed_updates")
        batch_op.drop_column("watch_until")
    op.drop_table("escalations")
    op.drop_index(op.f("ix_pages_incident_id"), table_name="pages")
    op.drop_table("pages")
    op.drop_index("ix_oncall_overrides_rotation_span", table_name="oncall_overrides")
    op.drop_table("oncall_overrides")
    op.drop_index(op.f("ix_outbox_incident_id"), table_name="outbox")
    op.drop_index("ix_outbox_target_created", table_name="outbox")
    op.drop_index("ix_outbox_thread", table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("instance_secrets")
    op.drop_index(op.f("ix_timers_incident_id"), table_name="timers")
    op.drop_index("ix_timers_pending", table_name="timers")
    op.drop_table("timers")
