"""Health-check results (raw, pruned after days), hourly and daily aggregates (kept for years), state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Double, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.db.base import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits (billions of checks).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class MonitorResult(Base):
    """One run of one check."""

    __tablename__ = "monitor_results"
    __table_args__ = (
        Index("ix_monitor_results_monitor_at", "monitor", "at"),
        Index("ix_monitor_results_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    monitor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    ok: Mapped[bool]
    status_code: Mapped[int | None]
    latency_ms: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(String(500))
    failed: Mapped[str | None] = mapped_column(Text)  # the failed conditions with what was observed


class _Aggregate:
    """Columns shared by the hourly and daily aggregates."""

    checks: Mapped[int] = mapped_column(default=0)
    ok_checks: Mapped[int] = mapped_column(default=0)
    # Time-weighted: each result stands for the time until the next one (at most two intervals).
    up_seconds: Mapped[float] = mapped_column(Double, default=0.0)
    observed_seconds: Mapped[float] = mapped_column(Double, default=0.0)
    latency_p50: Mapped[float | None] = mapped_column(Double)
    latency_p95: Mapped[float | None] = mapped_column(Double)
    latency_p99: Mapped[float | None] = mapped_column(Double)
    # Sparse log-scale histogram [[bucket, count], ...] so days can merge hours' latencies.
    latency_histogram: Mapped[list[Any]] = mapped_column(default=list)


class MonitorHourly(_Aggregate, Base):
    """One monitor's checks in one UTC hour, written when the hour closes."""

    __tablename__ = "monitor_hourly"
    __table_args__ = (Index("ix_monitor_hourly_hour", "hour"),)

    monitor: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)

    @property
    def start(self) -> datetime:
        return self.hour


class MonitorDaily(_Aggregate, Base):
    """One monitor's checks in one UTC day, summed from its hours when the day closes."""

    __tablename__ = "monitor_daily"
    __table_args__ = (Index("ix_monitor_daily_day", "day"),)

    monitor: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[datetime] = mapped_column(primary_key=True)

    @property
    def start(self) -> datetime:
        return self.day


class MonitorState(Base):
    """Where a monitor stands: up or down, its streak, its last result, how far it is aggregated."""

    __tablename__ = "monitor_states"

    monitor: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(8), default="unknown")  # unknown | up | down
    changed_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    consecutive_successes: Mapped[int] = mapped_column(default=0)
    failing_since: Mapped[datetime | None]
    alerted: Mapped[bool] = mapped_column(default=False)  # a trigger was committed and not yet resolved
    last_checked_at: Mapped[datetime | None]
    last_ok: Mapped[bool | None]
    last_status_code: Mapped[int | None]
    last_latency_ms: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_failed: Mapped[str | None] = mapped_column(Text)
    hourly_until: Mapped[datetime]  # hours before this are in monitor_hourly
    daily_until: Mapped[datetime]  # days before this are in monitor_daily


class MonitorLease(Base):
    """Which process runs the monitors: replicas sharing a database run each check once."""

    __tablename__ = "monitor_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
