"""User reports and the per-component burst state that turns several of them into one alert."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base


class Report(Base):
    """One person telling us something is wrong, from the public form, the API or email."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_status", "status", "id"),
        Index("ix_reports_component_created", "component", "created_at"),
        Index("ix_reports_reporter_created", "reporter", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    component: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(String(254))
    channel: Mapped[str] = mapped_column(String(8))  # web | api | email
    client: Mapped[str] = mapped_column(String(64))  # the peer's IP address
    # Who is speaking, for rate limits and for counting distinct voices in a burst:
    # `ip:<address>` for the form and the API, `mail:<sender>` for email (relays share addresses).
    reporter: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="new")  # new | linked | dismissed
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    triaged_by: Mapped[str | None] = mapped_column(String(64))
    triaged_at: Mapped[datetime | None]


class ReportBurst(Base):
    """The current burst of reports about one component, and whether it has raised its alert.

    A burst lasts while reports keep arriving within the policy's `reports_window` of each other;
    it raises at most one alert. `alert` is `pending` from the commit that crossed the threshold until
    the alert pipeline has the signal, so a crash in between is retried rather than lost.
    """

    __tablename__ = "report_bursts"

    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime]
    last_report_at: Mapped[datetime]
    alert: Mapped[str] = mapped_column(String(16), default="none")  # none | pending | raised
    alert_due_at: Mapped[datetime | None]  # when a pending alert was decided
    reporters: Mapped[int] = mapped_column(default=0)  # distinct reporters when the threshold was crossed
    # The incident the last raised alert went to: a new burst joins it while it is still open.
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
