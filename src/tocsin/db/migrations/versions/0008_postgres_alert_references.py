"""PostgreSQL: no foreign-key checks on a new alert's integration and incident (see `alerts.models.Alert`).

SQLite keeps them.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_REFERENCES = [
    ("fk_alerts_integration_id_integrations", "integrations", "integration_id"),
    ("fk_alerts_incident_id_incidents", "incidents", "incident_id"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _, _ in _REFERENCES:
            op.drop_constraint(name, "alerts", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, column in _REFERENCES:
            op.create_foreign_key(name, "alerts", table, [column], ["id"])
