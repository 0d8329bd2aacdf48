"""Integrations, alerts, alert groups and silences."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base

# An alert's statuses before `resolved`, by name: `status IN (...)` is a range of `ix_alerts_status_ends`,
# where `status != 'resolved'` made SQLite scan every alert.
OPEN_STATUSES = ("firing", "acknowledged")


class Integration(Base):
    """A source of alerts with its own secret key, routed to a service."""

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    severity_rules: Mapped[list[Any]] = mapped_column(default=list)
    from_policy: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class Alert(Base):
    """One problem reported by a source; repeats of it bump `count` and `last_seen_at`."""

    __tablename__ = "alerts"
    __table_args__ = (
        # One open alert per (integration, dedup key): repeats find it, a resolved one makes room for a new
        # one. PostgreSQL only: on SQLite each process maps open alerts in memory (`alerts.openkeys`).
        Index(
            "uq_alerts_open_dedup",
            "integration_id",
            "dedup_key",
            unique=True,
            postgresql_where=text("status != 'resolved'"),
        ).ddl_if(dialect="postgresql"),
        Index("ix_alerts_incident", "incident_id"),
        Index("ix_alerts_status_ends", "status", "ends_at"),
        # The muted alerts only (few): found again when their silence ends (`service.unmute_ended`).
        Index(
            "ix_alerts_muted",
            "muted_by",
            sqlite_where=text("muted_by IS NOT NULL"),
            postgresql_where=text("muted_by IS NOT NULL"),
        ),
        # Declared on SQLite only. PostgreSQL checks each new row's references with a trigger that locks
        # the rows referred to (FOR KEY SHARE): in a storm, the one incident and integration that thousands
        # of alerts a second point at, locked by every concurrent commit. Those rows are never deleted
        # (integrations are disabled, incidents closed), and every id written here was read in the same
        # transaction, the incident's row held; without the checks a storm of new alerts went about 1.2x
        # as fast (100 a request; bench/RESULTS.md).
        ForeignKeyConstraint(["integration_id"], ["integrations.id"]).ddl_if(dialect="sqlite"),
        ForeignKeyConstraint(["incident_id"], ["incidents.id"]).ddl_if(dialect="sqlite"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int]
    dedup_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # firing | acknowledged | resolved
    summary: Mapped[str] = mapped_column(String(1024))
    severity: Mapped[str] = mapped_column(String(4))
    severity_reason: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(255), default="")
    service: Mapped[str | None] = mapped_column(String(64))
    component: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    details: Mapped[dict[str, Any]]
    links: Mapped[list[Any]]
    group_key: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]  # when a Prometheus alert expires unless re-sent
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    count: Mapped[int] = mapped_column(default=1)
    muted_by: Mapped[str | None] = mapped_column(String(100))
    incident_id: Mapped[int | None]
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class AlertGroup(Base):
    """Alerts of one service and group key that arrive within the policy's window share an incident."""

    __tablename__ = "alert_groups"
    __table_args__ = (Index("ix_alert_groups_key", "service", "group_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service: Mapped[str] = mapped_column(String(64))
    group_key: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    opened_at: Mapped[datetime]
    last_alert_at: Mapped[datetime]
    alert_count: Mapped[int] = mapped_column(default=0)
    # In a storm the timeline hears of new alerts at most once a minute: how many it has been told of.
    told: Mapped[int] = mapped_column(default=0, server_default="0")
    told_at: Mapped[datetime | None]


class Silence(Base):
    """Label matchers that mute alerts until `ends_at` (also used for maintenance windows)."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(primary_key=True)
    matchers: Mapped[list[Any]]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16), default="silence")  # silence | maintenance
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


def label_value(name: str) -> Any:
    """A label's value as text (NULL where the alert has no such label), on either database."""
    return Alert.labels[name].as_string()
