"""The outbox: every message Tocsin sends is a row first, written with its cause, then delivered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base


class OutboxMessage(Base):
    """One message to one target over one channel.

    `idempotency_key` is unique: writing the same message twice (a handler re-run after a crash, two
    workers) keeps one row. Messages sharing a `thread` are one message updated in place (the first
    posts, later ones edit it): the alerts-channel announcement of an incident.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_thread", "thread"),
        Index("ix_outbox_target_created", "channel", "target", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # slack | email | webhook | console
    target: Mapped[str] = mapped_column(String(500))  # Slack channel or user id, address, URL
    kind: Mapped[str] = mapped_column(String(40))  # page, announce, reminder, invite, ...
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    thread: Mapped[str | None] = mapped_column(String(200))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    person: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|sent|failed|suppressed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
