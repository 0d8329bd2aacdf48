"""Timers: what must happen later, as rows written in the same transaction as their cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base


class Timer(Base):
    """One pending timer: at `due_at`, the handler for `kind` runs once with `payload`.

    (kind, key) is unique, so scheduling the same thing twice moves the one timer instead of adding a
    second. A fired timer keeps its row with `fired_at` set, in the transaction that ran its handler:
    the record that this deadline has had its effect (re-planning leaves it alone; scheduling the same
    kind and key again re-arms it).
    """

    __tablename__ = "timers"
    __table_args__ = (
        UniqueConstraint("kind", "key", name="uq_timers_kind_key"),
        Index(
            "ix_timers_pending",
            "due_at",
            postgresql_where=text("fired_at IS NULL"),
            sqlite_where=text("fired_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    fired_at: Mapped[datetime | None]


class InstanceSecret(Base):
    """Secrets this installation made for itself (the key that signs acknowledgement links)."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
