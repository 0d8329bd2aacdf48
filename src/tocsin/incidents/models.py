"""Incidents, their role assignments and their append-only timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)  # shown as INC-<id>
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(4), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(16))
    customer_facing: Mapped[bool]
    services: Mapped[list[str]]
    components: Mapped[list[str]]
    channel: Mapped[str] = mapped_column(String(81), unique=True)

    detected_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    mitigated_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    response_due_at: Mapped[datetime]
    resolution_due_at: Mapped[datetime]
    escalation_due_at: Mapped[datetime | None]
    next_update_due_at: Mapped[datetime | None]
    status_page_due_at: Mapped[datetime | None]
    last_update_at: Mapped[datetime | None]
    status_page_updated_at: Mapped[datetime | None]
    # The stability watch: a mitigated incident may be resolved from this instant (see engine jobs).
    watch_until: Mapped[datetime | None]
    missed_updates: Mapped[int] = mapped_column(default=0)  # management updates that came late
    # Flapping (`alerts.grouping.find_flapped`): resolved because its alerts all cleared before anyone
    # acknowledged it; and how many times an alert coming back has reopened it since (once reopened, it
    # no longer resolves itself: it waits for someone to acknowledge it).
    resolved_itself: Mapped[bool] = mapped_column(default=False)
    flaps: Mapped[int] = mapped_column(default=0)

    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Head of the timeline's hash chain, kept here so appending needs no extra read.
    last_seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)


class RoleAssignment(Base):
    __tablename__ = "incident_roles"
    __table_args__ = (Index("ix_incident_roles_open", "incident_id", "role", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    role: Mapped[str] = mapped_column(String(32))
    person: Mapped[str] = mapped_column(String(64))
    assigned_at: Mapped[datetime]
    assigned_by: Mapped[str] = mapped_column(String(64))
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(64))


class TimelineEvent(Base):
    __tablename__ = "timeline_events"
    __table_args__ = (UniqueConstraint("incident_id", "seq", name="uq_timeline_events_incident_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    seq: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    data: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
