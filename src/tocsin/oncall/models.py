"""On-call state that changes at run time: overrides, pages and running escalations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base


class Override(Base):
    """ "I'll take Tuesday night": `person` is on call for `rotation` from `starts_at` to `ends_at`."""

    __tablename__ = "oncall_overrides"
    __table_args__ = (Index("ix_oncall_overrides_rotation_span", "rotation", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rotation: Mapped[str] = mapped_column(String(64))
    person: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class Page(Base):
    """One person paged for one incident at one step; unique, so no step pages a person twice."""

    __tablename__ = "pages"
    __table_args__ = (
        UniqueConstraint("incident_id", "person", "step", name="uq_pages_incident_person_step"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    person: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(120))  # "assembly:primary", "escalation:technical:1:0", ...
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_via: Mapped[str | None] = mapped_column(String(16))


class Escalation(Base):
    """A chain running for an incident: which step it reached, in which round."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("incident_id", "chain", name="uq_escalations_incident_chain"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    chain: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(20))  # unacknowledged | unresolved | manual
    step: Mapped[int] = mapped_column(default=0)  # the next step to run, 0-based
    round: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
