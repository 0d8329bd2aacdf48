"""The status page's tables: component statuses and their history, public updates, maintenance,
subscribers, subscription attempts (for rate limits) and the version that invalidates rendered pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base


class StatusComponent(Base):
    """The current public status of one policy component; the row appears on its first change."""

    __tablename__ = "status_components"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ComponentChange(Base):
    """One change of a component's status: the history the uptime bars are computed from."""

    __tablename__ = "status_component_changes"
    __table_args__ = (Index("ix_status_component_changes_component_at", "component", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    component: Mapped[str] = mapped_column(String(64))
    old_status: Mapped[str] = mapped_column(String(24))
    new_status: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime]
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    maintenance_id: Mapped[int | None] = mapped_column(ForeignKey("status_maintenances.id"))


class Maintenance(Base):
    """A maintenance window: scheduled ahead (scheduled -> in_progress -> completed) or maintenance
    mode switched on now (`mode`), until switched off. Its silence mutes the components' alerts."""

    __tablename__ = "status_maintenances"
    __table_args__ = (Index("ix_status_maintenances_status", "status", "scheduled_for"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    components: Mapped[list[str]]
    status: Mapped[str] = mapped_column(String(16))  # scheduled|in_progress|completed|cancelled
    mode: Mapped[bool] = mapped_column(default=False)
    scheduled_for: Mapped[datetime]
    scheduled_until: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    remind_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("silences.id"))
    previous: Mapped[dict[str, Any]]  # component -> status before the window began
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StatusUpdate(Base):
    """One public update of an incident or a maintenance, with the component changes it made."""

    __tablename__ = "status_updates"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    maintenance_id: Mapped[int | None] = mapped_column(ForeignKey("status_maintenances.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    affected: Mapped[list[Any]]  # [{code, name, old_status, new_status}]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Subscriber(Base):
    """Someone told of updates: an email address (after double opt-in) or a webhook URL."""

    __tablename__ = "status_subscribers"
    __table_args__ = (UniqueConstraint("channel", "target", name="uq_status_subscribers_channel_target"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))  # email | webhook
    target: Mapped[str] = mapped_column(String(500))
    components: Mapped[list[str]]  # empty: every component
    state: Mapped[str] = mapped_column(String(16))  # pending | confirmed | unsubscribed
    client: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    confirm_sent_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]


class SubscribeAttempt(Base):
    """A subscription attempt from one client address, kept for the rate limit's window."""

    __tablename__ = "status_subscribe_attempts"
    __table_args__ = (Index("ix_status_subscribe_attempts_client_at", "client", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class PageVersion(Base):
    """A counter bumped by every change to what the public page shows; renderers poll it."""

    __tablename__ = "status_versions"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int]
